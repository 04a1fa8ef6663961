package node

// Fuzz target for the headers a node reads from a request another node
// forwarded to it (hopsOf, budgetOf). Any client can set them too: they
// are read from every request. Run with
//
//	go test -run '^$' -fuzz '^FuzzForwardHeaders$' -fuzztime 30s ./node/
//
// The seed corpus under testdata/fuzz also runs as a plain test.

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// FuzzForwardHeaders: hopsOf never returns a negative count and reads a
// decimal count as itself; budgetOf reads a budget only from a decimal
// header, and then a positive one: the value in milliseconds where it is
// at most a day, at least a day where it is more (it must not wrap round
// to a short or negative budget). What setHops writes reads back.
func FuzzForwardHeaders(f *testing.F) {
	f.Add("1", "250", true, 2, int64(1500))
	f.Add("0", "1", true, 0, int64(0))
	f.Add("-3", "-7", true, -1, int64(-5))
	f.Add("", "", false, 5, int64(time.Hour/time.Millisecond))
	f.Add("x", "1.5", true, 1<<30, int64(1))
	f.Add("+4", "+86400000", true, 3, int64(86_400_001))
	f.Add("99999999999999999999", "99999999999999999999", true, 1, int64(2))
	f.Fuzz(func(t *testing.T, hops, budget string, set bool, setH int, setMs int64) {
		m := &nats.Msg{Subject: "s"}
		if set {
			m.Header = nats.Header{headerHops: {hops}, headerBudget: {budget}}
		}

		h := hopsOf(m)
		if n, err := strconv.Atoi(hops); set && err == nil && n >= 0 {
			if h != n {
				t.Fatalf("hops header %q read as %d", hops, h)
			}
		} else if h != 0 {
			t.Fatalf("hops header %q (set %v) read as %d, want 0", hops, set, h)
		}

		d, ok := budgetOf(m)
		ms, err := strconv.ParseInt(budget, 10, 64)
		if wantOK := set && budget != "" && err == nil; ok != wantOK {
			t.Fatalf("budget header %q (set %v) read as %v, %v", budget, set, d, ok)
		}
		if ok {
			const day = 24 * time.Hour
			switch {
			case d <= 0:
				t.Fatalf("budget header %q read as %v: not positive", budget, d)
			case ms >= 1 && ms <= int64(day/time.Millisecond) && d != time.Duration(ms)*time.Millisecond:
				t.Fatalf("budget header %q read as %v", budget, d)
			case ms > int64(day/time.Millisecond) && d < day:
				t.Fatalf("budget header %q (more than a day) read as %v", budget, d)
			}
		}

		// What a forwarding node writes, the next one reads.
		if setH < 0 {
			return
		}
		const dayMs = int64(24 * time.Hour / time.Millisecond)
		budgetSet := time.Duration(min(max(setMs, -dayMs), dayMs)) * time.Millisecond
		out := &nats.Msg{Subject: "s"}
		setHops(out, setH, budgetSet)
		if got := hopsOf(out); got != setH {
			t.Fatalf("setHops %d read back as %d", setH, got)
		}
		want := time.Duration(max(budgetSet.Milliseconds(), 1)) * time.Millisecond
		if got, ok := budgetOf(out); !ok || got != want {
			t.Fatalf("setHops budget %v read back as %v, %v; want %v", budgetSet, got, ok, want)
		}
	})
}
