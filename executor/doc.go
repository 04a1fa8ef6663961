// Package executor runs commands: one at a time per aggregate, many
// aggregates in parallel, against state loaded from the event log, with
// appends from many aggregates grouped into batches.
//
// # Structure
//
//	Submit ──► shard (mutex) ──► entity mailbox ──► worker goroutine (one per active aggregate)
//	                                                   │ recall: command id in the command log? → recorded outcome
//	                                                   │ load:   cached state, or replay the event log
//	                                                   │ decide: model.Aggregate.Decide (pure)
//	                                                   ▼
//	                                          flush queue ──► flusher: Publisher.Prepare (outbox marks), then
//	                                                   │          one eventlog.Append + one commandlog.Put per batch
//	                     apply events to cached state ◄┘ then Publisher.Publish, then the caller's callback
//
// Each aggregate has an entity holding its mailbox and cached state. A
// worker goroutine exists only while the mailbox has work: it is started by
// the first command and exits when the mailbox is empty, parking the entity
// on its shard's idle list. So goroutines track active aggregates, not known
// ones, and every worker is counted (Close waits for them).
//
// The worker waits for its own write before taking the next command, which is
// what makes one aggregate's commands strictly sequential. Other aggregates'
// writes pile up meanwhile and the flusher writes them together (group
// commit): no timer, no added latency when idle, large batches under load.
//
// # Bounds and back-pressure
//
// State is cached for at most Config.MaxCached aggregates; idle ones are
// evicted least-recently-used first (per shard) and reloaded from the log on
// their next command. A mailbox holds at most Config.MailboxSize commands and
// the executor at most Config.MaxInFlight; past either, a command is answered
// ErrUnavailable at once instead of queueing without bound.
//
// # Conflicts
//
// Appends carry the sequence the worker last saw. If the store reports a
// conflict (another writer got there first, as when the cluster's ring moved)
// the worker drops its state, reloads, and decides the command once more; a
// second conflict is returned as ErrConflict. A failed write of unknown
// outcome also drops the state, so nothing is decided on a guess.
//
// # Idempotency
//
// Before deciding, the worker looks the command id up in the command log: a
// decided command returns its recorded outcome (Result.Duplicate) and runs
// nothing. Commands are recorded in the same flush as their events.
package executor
