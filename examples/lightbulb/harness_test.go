package lightbulb_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

// t0 is the fixed instant the tests count from; nothing reads the wall clock.
var t0 = time.Date(2024, 3, 1, 18, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// validArgs are arguments every command accepts (whether the domain then
// accepts the command is another matter).
var validArgs = map[string]string{
	"create":    `{"wattage":60}`,
	"screwIn":   `{"location":"hall"}`,
	"switchOn":  ``,
	"switchOff": ``,
	"unscrew":   ``,
	"blow":      ``,
}

// bulb drives one lightbulb aggregate the way the executor does: Decide,
// then Apply the events (as if they had been appended), keeping the history.
type bulb struct {
	l       *lightbulb.Lightbulb
	agg     model.Aggregate
	history []model.Event
}

func newBulb(t *testing.T) *bulb {
	t.Helper()
	l := lightbulb.Define()
	if err := l.Type.Err(); err != nil {
		t.Fatalf("lightbulb.Define: %v", err)
	}
	return &bulb{l: l, agg: l.Type.NewAggregate("b1")}
}

// do decides a command processed at now (with the event time given by the
// source when source is not zero) and applies its events if it succeeded.
func (b *bulb) do(t *testing.T, cmd, args string, now, source time.Time) ([]model.Event, error) {
	t.Helper()
	events, err := b.agg.Decide(&model.CommandRequest{
		CommandID: cmd + "@" + now.Format(time.RFC3339Nano),
		Command:   cmd,
		Args:      []byte(args),
		Now:       now,
		Timestamp: source,
	})
	if err != nil {
		return nil, err
	}
	for i := range events {
		if _, err := b.agg.Apply(&events[i]); err != nil {
			t.Fatalf("Apply(%s seq %d) after Decide(%s): %v", events[i].VersionedName(), events[i].Sequence, cmd, err)
		}
	}
	b.history = append(b.history, events...)
	return events, nil
}

// must runs a command that has to succeed, at now.
func (b *bulb) must(t *testing.T, cmd string, now time.Time) []model.Event {
	t.Helper()
	events, err := b.do(t, cmd, validArgs[cmd], now, time.Time{})
	if err != nil {
		t.Fatalf("%s at %v: %v", cmd, now, err)
	}
	return events
}

func (b *bulb) state(t *testing.T) lightbulb.Bulb {
	t.Helper()
	s, ok := b.l.Type.Value(b.agg)
	if !ok {
		t.Fatal("Type.Value: the aggregate is not a lightbulb")
	}
	return s
}

func names(events []model.Event) string {
	parts := make([]string, len(events))
	for i := range events {
		parts[i] = events[i].VersionedName().String()
	}
	return strings.Join(parts, " ")
}

func rejectionReason(err error) (string, bool) {
	var rej *model.Rejection
	if !errors.As(err, &rej) {
		return "", false
	}
	return rej.Reason, true
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	got, ok := rejectionReason(err)
	if !ok {
		t.Fatalf("err = %v (%T), want a *model.Rejection with reason %q", err, err, reason)
	}
	if got != reason {
		t.Fatalf("rejection reason = %q (%v), want %q", got, err, reason)
	}
}

func usageString(u lightbulb.Usage) string {
	since := "-"
	if u.OnSince != nil {
		since = u.OnSince.Format(time.RFC3339Nano)
	}
	return "on " + time.Duration(u.OnMillis*int64(time.Millisecond)).String() +
		", switches " + strconv.Itoa(u.Switches) + ", since " + since
}

func sameUsage(a, b lightbulb.Usage) bool {
	if a.OnMillis != b.OnMillis || a.Switches != b.Switches || (a.OnSince == nil) != (b.OnSince == nil) {
		return false
	}
	return a.OnSince == nil || a.OnSince.Equal(*b.OnSince)
}
