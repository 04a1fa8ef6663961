package eventbus

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// claims is a Claim function a test changes as it goes.
type claims struct {
	mu sync.Mutex
	by map[string]Claim
}

func (c *claims) set(writer string, cl Claim) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.by[writer] = cl
}

// hasWriter reports whether the outbox still keeps a position for writer.
func (r *syncRig) hasWriter(writer string) bool {
	r.t.Helper()
	ws, err := r.store.Writers(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return slices.ContainsFunc(ws, func(w eventlog.OutboxWriter) bool { return w.Writer == writer })
}

func (c *claims) claim(writer string) Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[writer]
}

// A departed writer's unacknowledged events are republished by the node
// that claims it and by no other; its outbox position is dropped once it
// has been absent ForgetAfter, not before, and a writer that comes back
// restarts its absence clock.
func TestSyncSweeperTakesOverOnlyClaimedWriters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSyncRig(t)
		dead := r.publisher("dead", true)
		r.write(dead, model.Ref{Type: "thing", ID: "d"}, 1, 2, false) // appended, never published: the crash
		closePublisher(t, dead)                                       // cannot release the bucket: the outbox is left as by a crash

		live := r.publisher("live", true)
		other := r.publisher("other", true)
		cl := &claims{by: map[string]Claim{"dead": ClaimUnknown, "other": ClaimPresent, "live": ClaimPresent}}
		sweep := func(p *Publisher, claim func(string) Claim) *Sweeper {
			return NewSweeper(SweeperConfig{Publisher: p, Outbox: r.ob, Claim: claim,
				Interval: time.Second, ForgetAfter: 10 * time.Second, Clock: time.Now})
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { sweep(live, cl.claim).Run(ctx) })
		wg.Go(func() {
			sweep(other, func(w string) Claim {
				if cl.claim(w) == ClaimMine {
					return ClaimOther // exactly one node claims a writer
				}
				return cl.claim(w)
			}).Run(ctx)
		})

		pass(5 * time.Second)
		if got := r.bus.events(); len(got) != 0 {
			t.Fatalf("published %v while the claim was unknown", got)
		}
		cl.set("dead", ClaimMine)
		pass(time.Second)
		if got := r.bus.events(); !slices.Equal(got, []string{"d-1", "d-2"}) {
			t.Fatalf("after the claim the bus holds %v, want d-1 d-2 once", got)
		}
		if w := r.position("dead"); w.Pending() {
			t.Fatalf("the dead writer's position still pending after the takeover: %+v", w)
		}
		pass(8 * time.Second)
		if !r.hasWriter("dead") {
			t.Fatal("the dead writer was forgotten before ForgetAfter")
		}
		cl.set("dead", ClaimPresent) // it comes back: the absence clock restarts
		pass(5 * time.Second)
		cl.set("dead", ClaimMine)
		pass(9 * time.Second)
		if !r.hasWriter("dead") {
			t.Fatal("forgotten 9 s after coming back and leaving again; the clock should have restarted")
		}
		pass(2 * time.Second)
		if r.hasWriter("dead") {
			t.Fatal("still kept 11 s after it left for good")
		}
		if !r.hasWriter("live") || !r.hasWriter("other") {
			t.Fatal("a present writer was forgotten")
		}
		if got := r.bus.events(); len(got) != 2 {
			t.Fatalf("the bus holds %v: republished more than once", got)
		}
		cancel()
		wg.Wait()
		closePublisher(t, live)
		closePublisher(t, other)
	})
}

// While the bus is unreachable the sweeper does nothing.
func TestSyncSweeperWaitsForTheBus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSyncRig(t)
		dead := r.publisher("dead", true)
		r.write(dead, model.Ref{Type: "thing", ID: "d"}, 1, 1, false)
		closePublisher(t, dead)
		live := r.publisher("live", true)
		s := NewSweeper(SweeperConfig{Publisher: live, Outbox: r.ob,
			Claim:     func(string) Claim { return ClaimMine },
			Connected: r.bus.IsConnected})
		r.bus.setConnected(false)
		s.Sweep(context.Background())
		if got := r.bus.events(); len(got) != 0 {
			t.Fatalf("published %v while disconnected", got)
		}
		r.bus.setConnected(true)
		s.Sweep(context.Background())
		if got := r.bus.events(); !slices.Equal(got, []string{"d-1"}) {
			t.Fatalf("bus holds %v", got)
		}
		closePublisher(t, live)
	})
}
