package testsupport_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/internal/testsupport"
)

var t0 = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case at := <-ch:
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestClockTimers(t *testing.T) {
	c := testsupport.NewClock(t0)
	tm, ch := c.NewTimer(2 * time.Second)
	c.Advance(2*time.Second - time.Millisecond)
	if _, ok := fired(ch); ok {
		t.Fatal("fired before its time")
	}
	c.Advance(time.Millisecond)
	if at, ok := fired(ch); !ok || !at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("at its time: fired %v at %v", ok, at)
	}
	if tm.Stop() {
		t.Error("Stop after firing reports it was active")
	}

	// Reset and Stop leave no stale time in the channel.
	c.Advance(time.Second)
	if tm.Reset(0) { // fires at once; the time is left in the channel
		t.Error("Reset of a fired timer reports it was active")
	}
	if tm.Reset(time.Second) {
		t.Error("Reset after a firing that was not received reports it was active")
	}
	if _, ok := fired(ch); ok {
		t.Fatal("a stale time survived Reset")
	}
	if !tm.Stop() {
		t.Error("Stop of a pending timer reports it was not active")
	}
	c.Advance(time.Hour)
	if _, ok := fired(ch); ok {
		t.Fatal("a stopped timer fired")
	}

	// Set fires what is due at the new time; a timer of d <= 0 fires at once.
	_, ch = c.NewTimer(time.Minute)
	c.Set(c.Now().Add(time.Minute))
	if _, ok := fired(ch); !ok {
		t.Fatal("Set did not fire the timer due")
	}
	_, ch = c.NewTimer(0)
	if _, ok := fired(ch); !ok {
		t.Fatal("a timer of 0 did not fire at once")
	}
	// Fired counts every firing: at 2 s, Reset(0), Set, and the timer of 0.
	if n := c.Fired(); n != 4 {
		t.Errorf("Fired %d, want 4", n)
	}
	if got, want := c.Now(), t0.Add(3*time.Second+time.Hour+time.Minute); !got.Equal(want) {
		t.Fatalf("Now %v, want %v", got, want)
	}
}

func TestClockZeroAndConcurrent(t *testing.T) {
	var c testsupport.Clock
	if !c.Now().IsZero() {
		t.Fatalf("zero clock reads %v", c.Now())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			c.Advance(time.Millisecond)
		}
	}()
	for range 1000 {
		_ = c.Now()
	}
	<-done
	if got := c.Now().Sub(time.Time{}); got != time.Second {
		t.Fatalf("advanced %v, want 1s", got)
	}
}

// fatalTB records a failure instead of stopping the goroutine.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	testsupport.Eventually(t, 5*time.Second, "the third look", func() bool { return n.Add(1) == 3 })

	f := &fatalTB{TB: t}
	testsupport.Eventually(f, 10*time.Millisecond, "never", func() bool { return false })
	if f.msg != "timed out after 10ms waiting for never" {
		t.Errorf("bool failure: %q", f.msg)
	}
	f.msg = ""
	testsupport.EventuallyErr(f, 10*time.Millisecond, "a leader", func() error { return errors.New("2 leaders") })
	if f.msg != "timed out after 10ms waiting for a leader: 2 leaders" {
		t.Errorf("error failure: %q", f.msg)
	}
}

func TestNATS(t *testing.T) {
	s := testsupport.NATS(t, testsupport.JetStream(), func(o *server.Options) { o.Authorization = "s3cret" })
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("URL %s", s.ClientURL())
	}
	nc := testsupport.Connect(t, strings.Replace(s.ClientURL(), "nats://", "nats://s3cret@", 1))
	if got := nc.Opts.Name; got != t.Name() {
		t.Errorf("connection named %q, want the test's name", got)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatalf("JetStream: %v", err)
	}
}
