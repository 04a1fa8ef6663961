// Package lifecycle gives a component one way to run its background
// goroutines: each is started through [Group.Go], sees the group's one stop
// context, and is counted, so that stopping the component is one call that
// returns when every goroutine it started has returned.
//
// It has its own package because node, and the components node assembles,
// need the same small thing, and a copy in each would drift (a WaitGroup
// here, a stop channel and a Once there).
package lifecycle

import (
	"context"
	"slices"
	"sync"
)

// Group is a set of goroutines that share a stop context. The zero Group is
// not usable; create one with [New]. Its methods are safe for concurrent
// use.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	running map[string]int // by name, for Running
}

// New returns a group whose stop context is a child of parent: cancelling
// parent stops the group's goroutines too (Stop still waits for them).
func New(parent context.Context) *Group {
	ctx, cancel := context.WithCancel(parent)
	return &Group{ctx: ctx, cancel: cancel, running: make(map[string]int)}
}

// Go runs fn in a new goroutine with the group's stop context, which is
// cancelled when the group stops. name says what the goroutine does (see
// Running). Go reports false, and does not run fn, once Stop or Cancel was
// called: a component that is stopping starts nothing new.
func (g *Group) Go(name string, fn func(ctx context.Context)) bool {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return false
	}
	g.wg.Add(1)
	g.running[name]++
	g.mu.Unlock()
	go func() {
		defer func() {
			g.mu.Lock()
			if g.running[name]--; g.running[name] == 0 {
				delete(g.running, name)
			}
			g.mu.Unlock()
			g.wg.Done()
		}()
		fn(g.ctx)
	}()
	return true
}

// Context is the group's stop context: done once the group stops.
func (g *Group) Context() context.Context { return g.ctx }

// Cancel cancels the stop context without waiting: the first half of Stop,
// for a component that must release something (close a subscription, say)
// before its goroutines can return. It is safe to call more than once.
func (g *Group) Cancel() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
}

// Wait returns when every goroutine started by Go has returned.
func (g *Group) Wait() { g.wg.Wait() }

// Stop cancels the stop context and waits for the goroutines. It is safe to
// call more than once and from several goroutines, but not from one of the
// group's own goroutines (it would wait for itself).
func (g *Group) Stop() {
	g.Cancel()
	g.Wait()
}

// Running lists the names of the goroutines running now, sorted, a name
// once per goroutine.
func (g *Group) Running() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var names []string
	for name, n := range g.running {
		for range n {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
