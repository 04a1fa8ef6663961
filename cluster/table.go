package cluster

import (
	"slices"
	"strings"
	"sync"
)

// table is this node's member table and the fan-out of its views. It is
// the pure part of the package: memberlist's delegate feeds it Members,
// the publisher goroutine turns changes into Views for subscribers, and
// nothing in it does I/O or blocks, so the delegate (called with
// memberlist's node lock held) may call apply directly.
//
// Lock order: memberlist's locks, then table.mu. table.mu is never held
// while calling memberlist or while blocking on a channel.
type table struct {
	tombstones int
	// changed has capacity 1 and holds a token while a change awaits
	// publishing; apply never blocks on it.
	changed chan struct{}

	mu struct {
		sync.Mutex
		members map[string]*entry
		version uint64 // bumped by every effective change
		seq     uint64 // departure counter, orders tombstones for pruning
		view    View   // cached snapshot; valid when view.Version == version
		cached  bool
		subs    map[*Subscription]struct{}
		closed  bool
		// published is the version of the last view offered to the
		// subscribers.
		published uint64
	}
}

type entry struct {
	m        Member
	departed uint64 // departure order when m is dead or left
	// leaving: m announced that it leaves (while alive), so its coming
	// departure is a leave, not a failure.
	leaving bool
}

func newTable(tombstones int) *table {
	t := &table{tombstones: tombstones, changed: make(chan struct{}, 1)}
	t.mu.members = make(map[string]*entry)
	t.mu.subs = make(map[*Subscription]struct{})
	return t
}

// apply records m's current state, as memberlist reports it: alive, or
// dead for any departure (memberlist does not tell a leave from a failure
// in its callbacks; see leaveIntent). A departure of a member that
// announced its leave is recorded as StateLeft. apply reports whether the
// table changed and, if so, signals the publisher. It never blocks.
func (t *table) apply(m Member) bool {
	t.mu.Lock()
	old, ok := t.mu.members[m.ID]
	leaving := false
	if ok {
		leaving = old.leaving
		if old.m.State != StateAlive && m.State == StateAlive {
			leaving = false // came back: a new life, no announcement yet
		}
		if old.m.State == StateLeft && m.State == StateDead {
			m.State = StateLeft // learnt of the leave before the departure
		}
	}
	if m.State == StateDead && leaving {
		m.State = StateLeft
	}
	if ok && old.m == m {
		old.leaving = leaving
		t.mu.Unlock()
		return false
	}
	e := &entry{m: m, leaving: leaving}
	if m.State != StateAlive {
		if ok && old.m.State != StateAlive {
			e.departed = old.departed
		} else {
			t.mu.seq++
			e.departed = t.mu.seq
		}
	}
	t.mu.members[m.ID] = e
	t.changedLocked()
	t.mu.Unlock()
	t.signal()
	return true
}

// leaveIntent records that member id announced it is leaving. If it is
// still alive, its departure will be recorded as a leave; if its
// departure was already recorded (as a failure: the announcement lost the
// race with memberlist's dead message), it becomes a leave now. Reports
// whether the table changed.
func (t *table) leaveIntent(id string) bool {
	return t.markLeft(id, true)
}

// peerSaysLeft records that another member has id as left (learnt from
// its push/pull state). Only a recorded failure is turned into a leave:
// an alive member is not flagged, since the peer's knowledge may be of an
// earlier life of the same id. Reports whether the table changed.
func (t *table) peerSaysLeft(id string) bool {
	return t.markLeft(id, false)
}

func (t *table) markLeft(id string, flagAlive bool) bool {
	t.mu.Lock()
	e, ok := t.mu.members[id]
	if !ok {
		t.mu.Unlock()
		return false
	}
	switch e.m.State {
	case StateAlive:
		if flagAlive {
			e.leaving = true
		}
	case StateDead:
		e.m.State = StateLeft
		t.changedLocked()
		t.mu.Unlock()
		t.signal()
		return true
	}
	t.mu.Unlock()
	return false
}

// left returns the ids of the members recorded as left.
func (t *table) left() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []string
	for id, e := range t.mu.members {
		if e.m.State == StateLeft {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// changedLocked records a change: a new version, and a new snapshot when
// next asked.
func (t *table) changedLocked() {
	t.mu.version++
	t.mu.cached = false
	t.pruneLocked()
}

// signal tells the publisher a change awaits; it never blocks.
func (t *table) signal() {
	select {
	case t.changed <- struct{}{}:
	default: // a publish is already pending; it will see this change too
	}
}

// pruneLocked drops the oldest tombstones beyond the limit.
func (t *table) pruneLocked() {
	for {
		n := 0
		var oldest *entry
		for _, e := range t.mu.members {
			if e.m.State == StateAlive {
				continue
			}
			n++
			if oldest == nil || e.departed < oldest.departed {
				oldest = e
			}
		}
		if n <= t.tombstones {
			return
		}
		delete(t.mu.members, oldest.m.ID)
	}
}

// get returns one member.
func (t *table) get(id string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.mu.members[id]
	if !ok {
		return Member{}, false
	}
	return e.m, true
}

// snapshot returns the current view.
func (t *table) snapshot() View {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshotLocked()
}

func (t *table) snapshotLocked() View {
	if t.mu.cached {
		return t.mu.view
	}
	ms := make([]Member, 0, len(t.mu.members))
	for _, e := range t.mu.members {
		ms = append(ms, e.m)
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	t.mu.view = View{Version: t.mu.version, Members: ms}
	t.mu.cached = true
	return t.mu.view
}

// publish offers the current view to every subscriber and returns it.
func (t *table) publish() View {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.snapshotLocked()
	for s := range t.mu.subs {
		s.offerLocked(v)
	}
	t.mu.published = v.Version
	return v
}

// subscribe registers a subscriber and hands it the current view.
func (t *table) subscribe() *Subscription {
	s := &Subscription{t: t, ch: make(chan View, 1)}
	t.mu.Lock()
	defer t.mu.Unlock()
	s.offerLocked(t.snapshotLocked())
	if t.mu.closed {
		s.closed = true
		close(s.ch)
		return s
	}
	t.mu.subs[s] = struct{}{}
	return s
}

// close offers the final view to every subscriber and closes their
// channels. Later subscribers get the final view and a closed channel.
func (t *table) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return
	}
	t.mu.closed = true
	v := t.snapshotLocked()
	for s := range t.mu.subs {
		s.offerLocked(v)
		s.closed = true
		close(s.ch)
	}
	clear(t.mu.subs)
}

// Subscription delivers views to one consumer. Its channel has capacity 1
// and always holds the newest view not yet received: a slow consumer
// skips intermediate views but never misses the latest, and never slows
// the cluster down. Versions received are strictly increasing. Use Diff
// between the last view handled and the one received to see what
// changed.
type Subscription struct {
	t  *table
	ch chan View
	// guarded by t.mu
	sent   bool
	last   uint64
	closed bool
}

// C returns the channel of views. The first view, the one current when
// Subscribe was called, is ready at once. The channel is closed by Close
// and when the Cluster is closed; a view buffered before that (the final
// one, after a Cluster's Close) can still be received.
func (s *Subscription) C() <-chan View { return s.ch }

// Close stops delivery and closes the channel. It is safe to call more
// than once and concurrently with everything else.
func (s *Subscription) Close() {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	delete(s.t.mu.subs, s)
	close(s.ch)
}

// offerLocked replaces the buffered view, if any, with v. Only the holder
// of t.mu sends on s.ch, so after draining the buffer the send cannot
// block.
func (s *Subscription) offerLocked(v View) {
	if s.closed || s.sent && v.Version <= s.last {
		return
	}
	select {
	case <-s.ch:
	default:
	}
	select {
	case s.ch <- v:
	default: // unreachable: see above
	}
	s.sent, s.last = true, v.Version
}
