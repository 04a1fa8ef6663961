// Package backoff is the one exponential backoff of the project's retry
// loops: the node's store connection, the client's retries, the cluster's
// join, the idempotency group's proposals and the router's delays. Each
// used to double its own wait by hand, with its own bounds and jitter.
//
// A Backoff starts at Min, doubles after every wait up to Max, and takes a
// fraction Jitter of each wait at random (0: none; 0.5: uniform between
// half the wait and the whole), so that clients that failed together do
// not retry together.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff. Set Min and Max (Max < Min counts as
// Min); the zero value waits nothing. It is not safe for concurrent use: a
// retry loop owns its Backoff.
type Backoff struct {
	Min, Max time.Duration
	Jitter   float64 // 0 to 1
	cur      time.Duration
}

// Next returns the wait before the next attempt and doubles the one after.
func (b *Backoff) Next() time.Duration {
	d := b.Peek()
	b.cur = min(2*d, max(b.Max, b.Min))
	if b.Jitter > 0 && d > 0 {
		j := time.Duration(float64(d) * min(b.Jitter, 1))
		d = d - j + rand.N(j+1)
	}
	return d
}

// Peek returns the wait Next would start from (before jitter) without
// moving on.
func (b *Backoff) Peek() time.Duration {
	if b.cur == 0 {
		return b.Min
	}
	return b.cur
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Nth is the wait before attempt n+1 (n from 0) of a backoff without
// jitter, for callers that keep the count themselves: Min·2ⁿ, at most Max.
func Nth(minWait, maxWait time.Duration, n int) time.Duration {
	d := minWait
	for range max(n, 0) {
		if d >= maxWait {
			break
		}
		d *= 2
	}
	return min(d, max(maxWait, minWait))
}

// Wait waits d or until ctx ends, whichever comes first, and returns
// ctx.Err() in the second case.
func Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
