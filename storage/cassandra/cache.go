package cassandra

import (
	"container/list"
	"sync"

	"github.com/concursus-go/concursus/model"
)

// position is where an aggregate's history stood at some moment: its last
// event (head) lives in bucket, whose first sequence is first. A position
// is only ever built from what was read from the database or written by a
// conditional batch that applied, so it is always true of some moment of
// the history — possibly an old one. Appends treat it as a hint: the
// conditional batch checks it.
type position struct {
	bucket int32
	first  int64
	head   int64
}

// positionCache is a bounded LRU map from aggregate to its latest known
// position. It only moves forward: a position with a lower head than the
// one it holds is ignored. Safe for concurrent use; its mutex is never held
// across I/O.
type positionCache struct {
	max int // <= 0: disabled
	mu  struct {
		sync.Mutex
		lru     *list.List // of *cacheEntry, most recent first
		entries map[model.Ref]*list.Element
	}
}

type cacheEntry struct {
	ref model.Ref
	pos position
}

func newPositionCache(max int) *positionCache {
	c := &positionCache{max: max}
	c.mu.lru = list.New()
	c.mu.entries = make(map[model.Ref]*list.Element)
	return c
}

// get returns the position known for ref.
func (c *positionCache) get(ref model.Ref) (position, bool) {
	if c.max <= 0 {
		return position{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.mu.entries[ref]
	if !ok {
		return position{}, false
	}
	c.mu.lru.MoveToFront(el)
	return el.Value.(*cacheEntry).pos, true
}

// advance records pos for ref unless a later position is known.
func (c *positionCache) advance(ref model.Ref, pos position) {
	if c.max <= 0 || pos.head <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.mu.entries[ref]; ok {
		e := el.Value.(*cacheEntry)
		if pos.head > e.pos.head {
			e.pos = pos
		}
		c.mu.lru.MoveToFront(el)
		return
	}
	c.mu.entries[ref] = c.mu.lru.PushFront(&cacheEntry{ref: ref, pos: pos})
	for c.mu.lru.Len() > c.max {
		oldest := c.mu.lru.Back()
		c.mu.lru.Remove(oldest)
		delete(c.mu.entries, oldest.Value.(*cacheEntry).ref)
	}
}

// drop forgets ref.
func (c *positionCache) drop(ref model.Ref) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.mu.entries[ref]; ok {
		c.mu.lru.Remove(el)
		delete(c.mu.entries, ref)
	}
}

// len returns the number of aggregates cached.
func (c *positionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.lru.Len()
}
