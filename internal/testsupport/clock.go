package testsupport

import (
	"sync"
	"time"
)

// Clock is a fake clock: it stands still until a test sets it or moves it
// on, and then fires the timers that have come due. Windows and timeouts
// driven by it pass when the test says so, however fast or slow the
// machine. Its Now method fits wherever a func() time.Time is injected
// (pass c.Now).
//
// It is safe for concurrent use. The zero Clock reads the zero time;
// [NewClock] starts one at an instant. A Clock must not be copied after
// first use.
type Clock struct {
	// mu guards the time and every timer's fields.
	mu struct {
		sync.Mutex
		now    time.Time
		timers []*Timer
		fired  int
	}
}

// NewClock returns a clock that reads start until it is moved.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.mu.now = start
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.now
}

// Set puts the clock at t, which may be before its time, and fires the
// timers due at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.now = t
	c.fireLocked()
}

// Advance moves the clock on by d and fires the timers due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.now = c.mu.now.Add(d)
	c.fireLocked()
}

// Fired counts the timers the clock has fired so far. A timer fires
// inside Set, Advance or Reset, never later, so a test that reads Fired
// before and after moving the clock knows whether that move woke anyone:
// if it did not, nothing driven by the clock has happened since.
func (c *Clock) Fired() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.fired
}

func (c *Clock) fireLocked() {
	for _, t := range c.mu.timers {
		t.fireLocked()
	}
}

// NewTimer returns a timer that sends the clock's time on ch once the
// clock has been moved d on (at once if d <= 0), unless stopped or reset
// first. Like a time.Timer since Go 1.23, after Stop or Reset returns no
// stale time is received from ch.
//
// A package whose Clock interface returns its own Timer interface adapts
// this in a line: return c.Clock.NewTimer(d).
func (c *Clock) NewTimer(d time.Duration) (t *Timer, ch <-chan time.Time) {
	t = &Timer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	c.mu.timers = append(c.mu.timers, t)
	c.mu.Unlock()
	t.Reset(d)
	return t, t.ch
}

// Timer is a timer of a [Clock].
type Timer struct {
	c  *Clock
	ch chan time.Time
	// Guarded by c.mu.
	at     time.Time
	active bool
}

// Reset makes the timer fire once the clock reaches its time plus d; it
// reports whether the timer was active.
func (t *Timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.drainLocked()
	t.at, t.active = t.c.mu.now.Add(d), true
	t.fireLocked()
	return was
}

// Stop stops the timer; it reports whether the timer was active.
func (t *Timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	t.drainLocked()
	return was
}

func (t *Timer) fireLocked() {
	if t.active && !t.at.After(t.c.mu.now) {
		t.active = false
		t.c.mu.fired++
		select {
		case t.ch <- t.c.mu.now:
		default:
		}
	}
}

func (t *Timer) drainLocked() {
	select {
	case <-t.ch:
	default:
	}
}
