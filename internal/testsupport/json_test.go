package testsupport_test

import (
	"testing"

	"github.com/concursus-go/concursus/internal/testsupport"
)

func TestMustJSON(t *testing.T) {
	if got := testsupport.MustJSON(t, map[string]int{"a": 1}); got != `{"a":1}` {
		t.Fatalf("got %s", got)
	}
	f := &fatalRecorder{TB: t}
	testsupport.MustJSON(f, func() {})
	if !f.failed {
		t.Fatal("MustJSON did not fail on a value JSON cannot encode")
	}
}

// fatalRecorder records a t.Fatal instead of stopping the goroutine.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper()      {}
func (f *fatalRecorder) Fatal(...any) { f.failed = true }
