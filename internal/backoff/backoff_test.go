package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestDoublesUpToMax(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 70 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 70, 70}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("wait %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 10*time.Millisecond {
		t.Fatalf("after Reset: %v", got)
	}
}

func TestJitterStaysWithinItsFraction(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.5}
	seen := map[bool]bool{}
	for range 1000 {
		d := b.Next()
		if d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("jittered wait %v outside [50ms, 100ms]", d)
		}
		seen[d < 75*time.Millisecond] = true
	}
	if len(seen) != 2 {
		t.Fatal("1000 jittered waits all fell in one half of the range")
	}
}

func TestMaxBelowMinCountsAsMin(t *testing.T) {
	b := Backoff{Min: 30 * time.Millisecond}
	for range 3 {
		if got := b.Next(); got != 30*time.Millisecond {
			t.Fatalf("wait %v, want 30ms", got)
		}
	}
	var zero Backoff
	if got := zero.Next(); got != 0 {
		t.Fatalf("zero Backoff waits %v", got)
	}
}

func TestNth(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{-1, 25}, {0, 25}, {1, 50}, {2, 100}, {3, 200}, {4, 250}, {60, 250}} {
		if got := Nth(25*time.Millisecond, 250*time.Millisecond, c.n); got != c.want*time.Millisecond {
			t.Errorf("Nth(25ms, 250ms, %d) = %v, want %v", c.n, got, c.want*time.Millisecond)
		}
	}
}

func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Wait(context.Background(), time.Second); err != nil || time.Since(start) != time.Second {
			t.Fatalf("Wait: %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		if err := Wait(ctx, time.Hour); err != context.DeadlineExceeded || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("Wait with a deadline: %v after %v", err, time.Since(start))
		}
	})
}
