package lifecycle

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestStopWaitsForEveryGoroutine(t *testing.T) {
	g := New(context.Background())
	var done atomic.Int32
	for range 3 {
		g.Go("worker", func(ctx context.Context) {
			<-ctx.Done()
			done.Add(1)
		})
	}
	g.Go("other", func(ctx context.Context) {
		<-ctx.Done()
		done.Add(1)
	})
	if got, want := g.Running(), []string{"other", "worker", "worker", "worker"}; !slices.Equal(got, want) {
		t.Fatalf("Running() = %v, want %v", got, want)
	}
	g.Stop()
	if n := done.Load(); n != 4 {
		t.Fatalf("Stop returned with %d of 4 goroutines finished", n)
	}
	if r := g.Running(); len(r) != 0 {
		t.Fatalf("Running() after Stop = %v", r)
	}
	g.Stop() // a second Stop is harmless
}

func TestGoAfterStopRunsNothing(t *testing.T) {
	g := New(context.Background())
	g.Stop()
	ran := false
	if g.Go("late", func(context.Context) { ran = true }) {
		t.Fatal("Go after Stop reported true")
	}
	g.Wait()
	if ran {
		t.Fatal("Go after Stop ran its function")
	}
}

func TestCancelThenWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New(context.Background())
		release := make(chan struct{})
		var finished atomic.Bool
		g.Go("needs release", func(ctx context.Context) {
			<-ctx.Done()
			<-release // as a goroutine reading a subscription that Close ends
			finished.Store(true)
		})
		g.Cancel()
		if g.Go("late", func(context.Context) {}) {
			t.Fatal("Go after Cancel reported true")
		}
		synctest.Wait()
		if finished.Load() {
			t.Fatal("finished before release")
		}
		close(release)
		g.Wait()
		if !finished.Load() {
			t.Fatal("Wait returned before the goroutine finished")
		}
	})
}

func TestParentCancelStopsGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		g := New(parent)
		g.Go("ticker", func(ctx context.Context) {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
		time.Sleep(10 * time.Second)
		cancel()
		g.Wait()
		if r := g.Running(); len(r) != 0 {
			t.Fatalf("Running() after the parent was cancelled = %v", r)
		}
	})
}
