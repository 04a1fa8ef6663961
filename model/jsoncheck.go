package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors of CheckJSON. A request that fails with one is invalid and fails
// the same way if retried unchanged.
var (
	// ErrDuplicateKey: an object has the same key twice.
	ErrDuplicateKey = errors.New("model: duplicate JSON key")
	// ErrInvalidText: a string holds bytes that are not UTF-8, or an
	// escaped UTF-16 surrogate without its other half ("\ud800").
	ErrInvalidText = errors.New("model: JSON string is not valid Unicode")
	// ErrMalformedJSON: the document is not exactly one JSON value, or is
	// nested deeper than MaxJSONDepth.
	ErrMalformedJSON = errors.New("model: malformed JSON")
)

// MaxJSONDepth is how deeply CheckJSON lets arrays and objects nest:
// encoding/json's own limit, which CheckJSON has it enforce.
const MaxJSONDepth = 10000

// CheckJSON checks what encoding/json lets through silently, so that a
// document from outside the process means one thing only. It refuses, with
// an error that names the place (`args.location`):
//
//   - a key that appears twice in one object, at any depth
//     (ErrDuplicateKey). Keys are compared as encoding/json matches them
//     to struct fields, ignoring case: "id" and "ID" are the same key;
//   - a string, key or value, with bytes that are not UTF-8 or an escaped
//     lone UTF-16 surrogate (ErrInvalidText), which encoding/json would
//     replace with U+FFFD, so that distinct inputs decoded alike;
//   - anything that is not exactly one JSON value (ErrMalformedJSON).
//
// It decodes nothing; callers decode data afterwards as usual. It is safe
// for concurrent use and does not keep data.
func CheckJSON(data []byte) error {
	c := jsonChecker{data: data}
	return c.run()
}

// jsonFrame is one open array or object.
type jsonFrame struct {
	object bool
	// wantKey: the next token of this object is a key (or its end).
	wantKey bool
	// key is the current key of an object; index the current element of
	// an array (for error paths).
	key   string
	index int
	// keys holds the folded keys seen in an object, once there are more
	// than fit in few.
	few  []string
	keys map[string]struct{}
}

type jsonChecker struct {
	data  []byte
	stack []jsonFrame
}

func (c *jsonChecker) run() error {
	// Syntax first, by encoding/json itself (it also bounds the nesting);
	// the walk below then reads a document known to be well formed.
	if !json.Valid(c.data) {
		if len(bytes.TrimSpace(c.data)) == 0 {
			return fmt.Errorf("%w: empty document", ErrMalformedJSON)
		}
		err := json.Unmarshal(c.data, new(json.RawMessage))
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			return fmt.Errorf("%w at byte %d: %v", ErrMalformedJSON, syntaxErr.Offset, syntaxErr)
		}
		return fmt.Errorf("%w: %v", ErrMalformedJSON, err)
	}
	d := c.data
	for i := 0; i < len(d); {
		switch d[i] {
		case '{', '[':
			c.stack = append(c.stack, jsonFrame{object: d[i] == '{', wantKey: d[i] == '{'})
			i++
		case '}', ']':
			c.stack = c.stack[:len(c.stack)-1]
			i++
		case ',':
			top := &c.stack[len(c.stack)-1]
			if top.object {
				top.wantKey = true
			} else {
				top.index++
			}
			i++
		case '"':
			end := stringEnd(d, i)
			raw := d[i:end]
			isKey := len(c.stack) > 0 && c.stack[len(c.stack)-1].wantKey
			if p := rawStringProblem(raw); p != "" {
				where := c.path()
				if isKey {
					return fmt.Errorf("%w: a key%s %s", ErrInvalidText, in(where), p)
				}
				return fmt.Errorf("%w: %s %s", ErrInvalidText, orDocument(where), p)
			}
			if isKey {
				key, err := decodeKey(raw)
				if err != nil {
					return fmt.Errorf("%w: key %s: %v", ErrMalformedJSON, raw, err)
				}
				if err := c.addKey(key); err != nil {
					return err
				}
			}
			i = end
		default: // whitespace, ':', or a number, true, false, null
			i++
		}
	}
	return nil
}

// stringEnd returns the index just after the closing quote of the JSON
// string that starts at d[i] (a well-formed document).
func stringEnd(d []byte, i int) int {
	for k := i + 1; k < len(d); k++ {
		switch d[k] {
		case '\\':
			k++ // the escaped character; \uXXXX's digits are plain bytes
		case '"':
			return k + 1
		}
	}
	return len(d)
}

// decodeKey returns the text of a key, quotes included in raw.
func decodeKey(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// addKey records key in the innermost object, refusing a repeat.
func (c *jsonChecker) addKey(key string) error {
	top := &c.stack[len(c.stack)-1]
	folded := foldKey(key)
	dup := false
	if top.keys != nil {
		_, dup = top.keys[folded]
		top.keys[folded] = struct{}{}
	} else {
		for _, k := range top.few {
			if k == folded {
				dup = true
				break
			}
		}
		top.few = append(top.few, folded)
		if len(top.few) > 8 {
			top.keys = make(map[string]struct{}, 2*len(top.few))
			for _, k := range top.few {
				top.keys[k] = struct{}{}
			}
			top.few = nil
		}
	}
	if dup {
		return fmt.Errorf("%w: key %q appears twice%s (keys are compared ignoring case)", ErrDuplicateKey, key, in(c.path()))
	}
	top.key, top.wantKey = key, false
	return nil
}

// path renders where the checker is: `args.location`, `tags[2]`; "" at
// the top level.
func (c *jsonChecker) path() string {
	var b strings.Builder
	for i, f := range c.stack {
		last := i == len(c.stack)-1
		switch {
		case f.object && (!last || !f.wantKey):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(f.key)
		case !f.object:
			b.WriteString("[" + strconv.Itoa(f.index) + "]")
		}
	}
	return b.String()
}

func in(path string) string {
	if path == "" {
		return ""
	}
	return " in " + strconv.Quote(path)
}

func orDocument(path string) string {
	if path == "" {
		return "the document"
	}
	return strconv.Quote(path)
}

// foldKey maps a key onto the representative of its case-folding class, so
// that keys encoding/json treats as one field compare equal: each rune
// becomes the smallest rune of its simple-folding orbit.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// rawStringProblem checks the text of one JSON string as it appears in the
// document, quotes included (its syntax has been checked already): it must
// be UTF-8, and every escaped surrogate must be half of a pair. It returns
// "" or what is wrong.
func rawStringProblem(raw []byte) string {
	if len(raw) < 2 {
		return ""
	}
	s := raw[1 : len(raw)-1]
	if !utf8.Valid(s) {
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Sprintf("is not valid UTF-8 (byte 0x%02x)", s[i])
			}
			i += size
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			continue
		}
		i++
		if s[i] != 'u' {
			continue // \" \\ \/ \b \f \n \r \t: one character
		}
		hi, ok := hex4(s, i+1)
		if !ok {
			return "has a malformed \\u escape"
		}
		i += 4
		switch {
		case hi >= 0xDC00 && hi <= 0xDFFF:
			return fmt.Sprintf("has a lone UTF-16 surrogate (\\u%04x)", hi)
		case hi >= 0xD800 && hi <= 0xDBFF:
			if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if lo, ok := hex4(s, i+3); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 6
					continue
				}
			}
			return fmt.Sprintf("has a lone UTF-16 surrogate (\\u%04x)", hi)
		}
	}
	return ""
}

// hex4 reads four hex digits at s[i:].
func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
