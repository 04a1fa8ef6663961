package model_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/concursus-go/concursus/model"
)

func TestCheckJSON(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		err  error  // nil: accepted
		want string // a fragment of the message
	}{
		{name: "object", doc: `{"aggregateId":"b1","args":{"wattage":60,"tags":["a","b"]}}`},
		{name: "scalars", doc: ` 1 `},
		{name: "string", doc: `"x"`},
		{name: "same key in sibling objects", doc: `{"a":{"k":1},"b":{"k":2},"c":[{"k":1},{"k":2}]}`},
		{name: "same key at two depths", doc: `{"k":{"k":{"k":1}}}`},
		{name: "escaped pair", doc: `{"k":"\ud83d\ude00"}`},
		{name: "escaped BMP and control", doc: `{"k":"\u00e9\u0000\n"}`},
		{name: "UTF-8 text", doc: `{"clé":"😀 ünïcödé"}`},
		{name: "escaped backslash then u", doc: `{"k":"\\ud800"}`},
		{name: "huge number is not parsed", doc: `{"k":1e999}`},
		{name: "many keys", doc: `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11}`},

		{name: "duplicate top-level key", doc: `{"aggregateId":"a","aggregateId":"b"}`, err: model.ErrDuplicateKey, want: `key "aggregateId" appears twice`},
		{name: "duplicate ignoring case", doc: `{"aggregateId":"a","AggregateID":"b"}`, err: model.ErrDuplicateKey, want: `"AggregateID"`},
		{name: "duplicate by Kelvin sign", doc: `{"k":1,"\u212a":2}`, err: model.ErrDuplicateKey},
		{name: "duplicate in args", doc: `{"args":{"wattage":60,"wattage":70}}`, err: model.ErrDuplicateKey, want: `"wattage" appears twice in "args"`},
		{name: "duplicate in an array element", doc: `{"a":[{},{"x":1,"x":1}]}`, err: model.ErrDuplicateKey, want: `in "a[1]"`},
		{name: "duplicate among many keys", doc: `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"a":11}`, err: model.ErrDuplicateKey},
		{name: "duplicate with different escapes", doc: `{"a":1,"\u0061":2}`, err: model.ErrDuplicateKey},

		{name: "invalid byte in a value", doc: "{\"aggregateId\":\"x\xff\"}", err: model.ErrInvalidText, want: `"aggregateId" is not valid UTF-8 (byte 0xff)`},
		{name: "invalid byte in a key", doc: "{\"k\xfe\":1}", err: model.ErrInvalidText, want: "a key is not valid UTF-8"},
		{name: "invalid byte deep down", doc: "{\"args\":{\"l\":[\"ok\",\"x\xc3\"]}}", err: model.ErrInvalidText, want: `"args.l[1]"`},
		{name: "encoded surrogate", doc: "{\"k\":\"\xed\xa0\x80\"}", err: model.ErrInvalidText},
		{name: "invalid top-level string", doc: "\"\xff\"", err: model.ErrInvalidText, want: "the document"},
		{name: "lone high surrogate", doc: `{"k":"\ud800"}`, err: model.ErrInvalidText, want: `lone UTF-16 surrogate (\ud800)`},
		{name: "lone low surrogate", doc: `{"k":"\uDC00x"}`, err: model.ErrInvalidText, want: `\udc00`},
		{name: "high surrogate then non-surrogate", doc: `{"k":"\ud800\u0041"}`, err: model.ErrInvalidText},
		{name: "two high surrogates", doc: `{"k":"\ud800\ud800"}`, err: model.ErrInvalidText},
		{name: "lone surrogate in a key", doc: `{"\udfff":1}`, err: model.ErrInvalidText, want: "a key"},

		{name: "empty", doc: ``, err: model.ErrMalformedJSON, want: "empty"},
		{name: "blank", doc: " \n", err: model.ErrMalformedJSON},
		{name: "truncated", doc: `{"a":`, err: model.ErrMalformedJSON},
		{name: "syntax", doc: `{"a" 1}`, err: model.ErrMalformedJSON, want: "byte"},
		{name: "two values", doc: `{} {}`, err: model.ErrMalformedJSON, want: "after top-level value"},
		{name: "trailing garbage", doc: `1 x`, err: model.ErrMalformedJSON},
		{name: "too deep", doc: strings.Repeat("[", model.MaxJSONDepth+1) + strings.Repeat("]", model.MaxJSONDepth+1), err: model.ErrMalformedJSON, want: "max depth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := model.CheckJSON([]byte(tt.doc))
			if tt.err == nil {
				if err != nil {
					t.Fatalf("CheckJSON(%s) = %v, want nil", tt.doc, err)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("CheckJSON(%q) = %v, want %v", tt.doc, err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckJSON(%q) = %q, want it to mention %q", tt.doc, err, tt.want)
			}
		})
	}
	deep := strings.Repeat("[", model.MaxJSONDepth) + strings.Repeat("]", model.MaxJSONDepth)
	if err := model.CheckJSON([]byte(deep)); err != nil {
		t.Errorf("nesting at the limit: %v", err)
	}
}

// countDecoded counts the keys of every object in a decoded document.
func countDecoded(v any) int {
	switch v := v.(type) {
	case map[string]any:
		n := len(v)
		for _, e := range v {
			n += countDecoded(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range v {
			n += countDecoded(e)
		}
		return n
	}
	return 0
}

func decodeAny(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// FuzzCheckJSON: CheckJSON never panics; it refuses with one of its
// errors; whatever it accepts is one valid JSON document in UTF-8 whose
// objects have distinct keys, and that survives a decode and re-encode
// unchanged.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{
		`{"aggregateId":"b1","command":"create","args":{"wattage":60}}`,
		`{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"k":"\ud800"}`, `{"k":"\ud83d\ude00"}`,
		"{\"k\":\"x\xff\"}", `[1,[2,{"x":null}]]`, `"s"`, `{} {}`, ``, `{"a":{"b":{"c":[true,false]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := model.CheckJSON(data)
		if err != nil {
			if !errors.Is(err, model.ErrDuplicateKey) && !errors.Is(err, model.ErrInvalidText) && !errors.Is(err, model.ErrMalformedJSON) {
				t.Fatalf("CheckJSON(%q) = %v: not one of its errors", data, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("CheckJSON accepted invalid JSON %q", data)
		}
		if !utf8.Valid(data) {
			t.Fatalf("CheckJSON accepted invalid UTF-8 %q", data)
		}
		v, err := decodeAny(data)
		if err != nil {
			t.Fatalf("accepted %q does not decode: %v", data, err)
		}
		// Nothing was replaced: a U+FFFD in the decoded text was spelt
		// out in the document.
		if b, _ := json.Marshal(v); bytes.Contains(b, []byte("\ufffd")) &&
			!bytes.Contains(data, []byte("\ufffd")) && !bytes.Contains(bytes.ToLower(data), []byte(`\ufffd`)) {
			t.Fatalf("CheckJSON accepted %q, which decodes with replacement characters", data)
		}
		if got, want := countDecoded(v), tokenKeys(t, data); got != want {
			t.Fatalf("accepted %q has %d keys but decodes to %d: a duplicate got through", data, want, got)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", data, err)
		}
		if err := model.CheckJSON(again); err != nil {
			t.Fatalf("re-encoded %q refused: %v", again, err)
		}
		w, err := decodeAny(again)
		if err != nil || !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip of %q: %v, %v; want %v", data, w, err, v)
		}
	})
}

// tokenKeys counts the keys of every object in data, repeats included.
func tokenKeys(t *testing.T, data []byte) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type open struct{ object, wantKey bool }
	var stack []open
	n := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("Token on an accepted document: %v", err)
		}
		if len(stack) > 0 && stack[len(stack)-1].wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
			} else {
				n++
				stack[len(stack)-1].wantKey = false
				continue
			}
		} else if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				stack = append(stack, open{object: d == '{', wantKey: d == '{'})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}
