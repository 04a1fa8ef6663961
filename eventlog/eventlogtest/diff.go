package eventlogtest

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
)

// DiffFields lists the exported fields in which got differs from want, one
// "Name: got G, want W" line each, in the order T declares them; fields
// named in ignore are not compared. T must be a struct type.
//
// It compares a field the way the conformance suites require a store to
// keep it: one with an Equal method taking its own type (time.Time) by that
// method, so that a time read back in another location is the same time; a
// byte slice (a payload) by its bytes, shown as text; any other comparable
// field with ==, and the rest with reflect.DeepEqual. The command-log suite
// uses it too.
func DiffFields[T any](want, got *T, ignore ...string) []string {
	w, g := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	var d []string
	for i := range w.NumField() {
		f := w.Type().Field(i)
		if !f.IsExported() || slices.Contains(ignore, f.Name) {
			continue
		}
		wv, gv := w.Field(i), g.Field(i)
		if same(wv, gv) {
			continue
		}
		wa, ga := wv.Interface(), gv.Interface()
		if isBytes(wv) {
			wa, ga = string(wv.Bytes()), string(gv.Bytes())
		}
		d = append(d, fmt.Sprintf("%s: got %v, want %v", f.Name, ga, wa))
	}
	return d
}

// same reports whether two values of one field are equal as DiffFields
// describes.
func same(w, g reflect.Value) bool {
	if eq := w.MethodByName("Equal"); eq.IsValid() && eq.Type().NumIn() == 1 && eq.Type().In(0) == w.Type() &&
		eq.Type().NumOut() == 1 && eq.Type().Out(0).Kind() == reflect.Bool {
		return eq.Call([]reflect.Value{g})[0].Bool()
	}
	if isBytes(w) {
		return bytes.Equal(w.Bytes(), g.Bytes())
	}
	if w.Type().Comparable() {
		return w.Equal(g)
	}
	return reflect.DeepEqual(w.Interface(), g.Interface())
}

// isBytes reports whether v is a byte slice (json.RawMessage included).
func isBytes(v reflect.Value) bool {
	return v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8
}
