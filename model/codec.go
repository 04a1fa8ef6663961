package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Codec turns payloads and command arguments into bytes and back. It is a
// value chosen per aggregate type (see NewType), never a global.
type Codec interface {
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v (a pointer). It must reject trailing
	// data and type mismatches with an error.
	Unmarshal(data []byte, v any) error
}

// JSON is the JSON codec. By default it is strict: unknown fields are an
// error, so a misspelt argument is reported instead of silently ignored.
type JSON struct {
	// AllowUnknownFields accepts objects with fields the Go type lacks.
	AllowUnknownFields bool
}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes exactly one JSON value from data into v.
func (c JSON) Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if !c.AllowUnknownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// describeJSONError turns encoding/json's errors into messages that name the
// field and the expected type, which is what a client needs to fix a request.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Errorf("value of JSON type %s cannot be decoded into %s", typeErr.Value, typeErr.Type)
		}
		return fmt.Errorf("field %q: expected %s, got JSON %s", field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.EOF):
		return errors.New("empty JSON document")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON document")
	}
	return err
}
