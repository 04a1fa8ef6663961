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
}

// New returns a group whose stop context is a child of parent: cancelling
// parent stops the group's goroutines too (Stop still waits for them).
func New(parent context.Context) *Group {
	ctx, cancel := context.WithCancel(parent)
	return &Group{ctx: ctx, cancel: cancel}
}

// Go runs fn in a new goroutine with the group's stop context, which is
// cancelled when the group stops. Go reports false, and does not run fn,
// once Stop was called: a component that is stopping starts nothing new.
func (g *Group) Go(fn func(ctx context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.wg.Go(func() { fn(g.ctx) })
	return true
}

// Stop cancels the stop context and waits for the goroutines. It is safe to
// call more than once and from several goroutines, but not from one of the
// group's own goroutines (it would wait for itself).
func (g *Group) Stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
