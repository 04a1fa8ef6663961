package lifecycle

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestStopWaitsForEveryGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New(context.Background())
		var started, done atomic.Int32
		for range 4 {
			g.Go(func(ctx context.Context) {
				started.Add(1)
				<-ctx.Done()
				time.Sleep(time.Second) // returns well after the cancel
				done.Add(1)
			})
		}
		synctest.Wait()
		if n := started.Load(); n != 4 {
			t.Fatalf("%d of 4 goroutines started", n)
		}
		g.Stop()
		if n := done.Load(); n != 4 {
			t.Fatalf("Stop returned with %d of 4 goroutines finished", n)
		}
		g.Stop() // a second Stop is harmless
	})
}

func TestGoAfterStopRunsNothing(t *testing.T) {
	g := New(context.Background())
	g.Stop()
	var ran atomic.Bool
	if g.Go(func(context.Context) { ran.Store(true) }) {
		t.Fatal("Go after Stop reported true")
	}
	g.Stop()
	if ran.Load() {
		t.Fatal("Go after Stop ran its function")
	}
}

func TestParentCancelStopsGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		g := New(parent)
		var returned atomic.Bool
		g.Go(func(ctx context.Context) {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					returned.Store(true)
					return
				case <-tick.C:
				}
			}
		})
		time.Sleep(10 * time.Second)
		cancel()
		synctest.Wait()
		if !returned.Load() {
			t.Fatal("cancelling the parent did not end the goroutine")
		}
		g.Stop()
	})
}
