package model_test

import (
	"strings"
	"testing"

	"github.com/concursus-go/concursus/model"
)

type codecArgs struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Inner struct {
		N int `json:"n"`
	} `json:"inner"`
	Tags []string `json:"tags"`
}

func TestJSONUnmarshal(t *testing.T) {
	strict, lenient := model.JSON{}, model.JSON{AllowUnknownFields: true}
	tests := []struct {
		name    string
		codec   model.JSON
		in      string
		want    codecArgs // checked on success (Name and Count only)
		wantErr string    // fragment; empty means success
	}{
		{name: "valid", codec: strict, in: `{"name":"a","count":2}`, want: codecArgs{Name: "a", Count: 2}},
		{name: "trailing whitespace", codec: strict, in: " {\"name\":\"a\"} \n\t", want: codecArgs{Name: "a"}},
		{name: "null is the zero value", codec: strict, in: `null`},
		{name: "empty object", codec: strict, in: `{}`},

		{name: "unknown field rejected", codec: strict, in: `{"nmae":"a"}`, wantErr: `unknown field "nmae"`},
		{name: "unknown nested field rejected", codec: strict, in: `{"inner":{"m":1}}`, wantErr: `unknown field "m"`},
		{name: "unknown field allowed", codec: lenient, in: `{"nmae":"b","name":"a"}`, want: codecArgs{Name: "a"}},

		{name: "second value", codec: strict, in: `{"name":"a"} {"name":"b"}`, wantErr: "unexpected data after the JSON value"},
		{name: "trailing garbage", codec: strict, in: `{} x`, wantErr: "unexpected data after the JSON value"},
		{name: "trailing bracket", codec: strict, in: `{}}`, wantErr: "unexpected data after the JSON value"},
		{name: "trailing data also with unknown fields allowed", codec: lenient, in: `{}1`, wantErr: "unexpected data after the JSON value"},

		{name: "wrong type names the field", codec: strict, in: `{"count":"two"}`, wantErr: `field "count": expected int, got JSON string`},
		{name: "wrong nested type names the path", codec: strict, in: `{"inner":{"n":true}}`, wantErr: `field "inner.n": expected int, got JSON bool`},
		{name: "wrong element type", codec: strict, in: `{"tags":[1]}`, wantErr: `field "tags"`},
		{name: "overflow names the field", codec: strict, in: `{"count":1e40}`, wantErr: `field "count"`},
		{name: "wrong top-level type", codec: strict, in: `"x"`, wantErr: "value of JSON type string cannot be decoded into"},
		{name: "array instead of object", codec: strict, in: `[]`, wantErr: "value of JSON type array cannot be decoded into"},

		{name: "empty document", codec: strict, in: ``, wantErr: "empty JSON document"},
		{name: "whitespace only", codec: strict, in: "  \n", wantErr: "empty JSON document"},
		{name: "truncated object", codec: strict, in: `{"name":"a"`, wantErr: "truncated JSON document"},
		{name: "truncated string", codec: strict, in: `{"name":"a`, wantErr: "truncated JSON document"},
		{name: "malformed", codec: strict, in: `{"name":}`, wantErr: "malformed JSON at byte"},
		{name: "single quotes", codec: strict, in: `{'name':'a'}`, wantErr: "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got codecArgs
			err := tt.codec.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				wantErrContains(t, err, nil, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%q): %v", tt.in, err)
			}
			if got.Name != tt.want.Name || got.Count != tt.want.Count {
				t.Errorf("Unmarshal(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	in := codecArgs{Name: "a", Count: 3, Tags: []string{"x", "y"}}
	in.Inner.N = 7
	var codec model.Codec = model.JSON{}
	data, err := codec.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"a","count":3,"inner":{"n":7},"tags":["x","y"]}`; string(data) != want {
		t.Errorf("Marshal = %s, want %s", data, want)
	}
	var out codecArgs
	if err := codec.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || out.Count != in.Count || out.Inner.N != 7 || strings.Join(out.Tags, ",") != "x,y" {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
}

func TestJSONMarshalError(t *testing.T) {
	if _, err := (model.JSON{}).Marshal(make(chan int)); err == nil {
		t.Error("Marshal(chan) = nil error, want an error")
	}
}
