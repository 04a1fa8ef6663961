package testsupport

import (
	"errors"
	"testing"
	"time"
)

// Interval is how often [Eventually] and [EventuallyErr] look at their
// condition: short, so that a test goes on within milliseconds of the
// condition coming true.
const Interval = 2 * time.Millisecond

// errNotYet is what a bool condition that does not hold yet reports.
var errNotYet = errors.New("not yet")

// Eventually polls cond every [Interval] until it holds, and returns how
// long that took. If within passes first, it fails t with what, which
// names what was awaited ("the consumer to catch up"). Poll with a
// deadline instead of sleeping and hoping.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return EventuallyEvery(t, within, Interval, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// EventuallyErr is [Eventually] for a condition that says why it does not
// hold yet: it polls cond until it returns nil, and the failure reports
// the last error it returned.
func EventuallyErr(t testing.TB, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	return EventuallyEvery(t, within, Interval, what, cond)
}

// EventuallyEvery is [EventuallyErr] looking every every instead of every
// [Interval]: for a condition that costs something to check (a query to
// a database), or that moves a fake clock on at each look and so sets how
// fast fake time passes.
func EventuallyEvery(t testing.TB, within, every time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			if errors.Is(err, errNotYet) {
				t.Fatalf("timed out after %v waiting for %s", within, what)
			} else {
				t.Fatalf("timed out after %v waiting for %s: %v", within, what, err)
			}
			return time.Since(start) // t is not a *testing.T: Fatalf returned
		}
		time.Sleep(every)
	}
}
