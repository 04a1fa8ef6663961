package executor

// Test-only windows into the executor's internals, used by the black-box
// tests in package executor_test to wait for states deterministically
// instead of sleeping.

import "github.com/concursus-go/concursus/model"

// NumShards is the number of cache shards; per-shard capacity is
// ceil(MaxCached / NumShards).
const NumShards = numShards

// QueuedWrites is the number of flush items waiting in the flush queue (not
// yet taken by a flusher).
func (x *Executor) QueuedWrites() int { return len(x.flushq) }

// Running is the number of aggregates with a worker goroutine.
func (x *Executor) Running() int {
	n := 0
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		for _, e := range sh.mu.entities {
			if e.running {
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n
}

// ShardIndex is the shard ref's entity lives in.
func (x *Executor) ShardIndex(ref model.Ref) int {
	sh := x.shardOf(ref)
	for i := range x.shards {
		if &x.shards[i] == sh {
			return i
		}
	}
	panic("unreachable")
}

// ShardCapacity is the number of aggregates one shard keeps.
func (x *Executor) ShardCapacity() int { return x.shards[0].capacity }

// HasCachedState reports whether ref is idle with its state in memory.
// (While a worker runs, its state belongs to the worker and is not read.)
func (x *Executor) HasCachedState(ref model.Ref) bool {
	sh := x.shardOf(ref)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.mu.entities[ref]
	return e != nil && !e.running && e.agg != nil
}
