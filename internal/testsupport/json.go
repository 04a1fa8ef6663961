package testsupport

import (
	"encoding/json"
	"testing"
)

// MustJSON returns v encoded as JSON, failing the test if it cannot be
// encoded.
func MustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
