package executor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/concursus-go/concursus/executor"
)

func TestUUIDs(t *testing.T) {
	var ids executor.UUIDs
	seen := map[string]bool{}
	for range 100 {
		id, err := ids.EventID()
		if err != nil {
			t.Fatal(err)
		}
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 {
			t.Fatalf("event id %q: version %v, err %v; want a v7 UUID", id, u.Version(), err)
		}
		if seen[id] {
			t.Fatalf("event id %q repeated", id)
		}
		seen[id] = true
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 123_456_700, time.UTC)
	a, err := ids.ProcessingID(at)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ids.ProcessingID(at)
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 1 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("processing id %q: version %v variant %v err %v; want an RFC 4122 v1 UUID", a, u.Version(), u.Variant(), err)
	}
	sec, nsec := u.Time().UnixTime()
	if got := time.Unix(sec, nsec).UTC(); !got.Equal(at) {
		t.Errorf("processing id carries %v, want %v", got, at)
	}
	if a == b {
		t.Error("two processing ids for one instant are equal")
	}
}

type failingIDs struct{ executor.UUIDs }

func (failingIDs) EventID() (string, error) { return "", errors.New("no entropy") }

// An id that cannot be made fails the command as unavailable, before
// anything is written.
func TestIDFailureIsUnavailable(t *testing.T) {
	h := newHarness(t, executor.Config{}, func(_ *harness, d *executor.Deps) { d.IDs = failingIDs{} })
	ref := counterRef("no-ids")
	if _, err := h.exec(t, ref, "c", "create", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	h.checkLastSeq(t, ref, 0, "")
	if _, ok := h.recorded(t, "c"); ok {
		t.Error("recorded")
	}
}
