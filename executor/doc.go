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
// # Fences: every answer is justified by the log
//
// Two nodes may believe they own one aggregate for a while: after a pause,
// a gossip partition, a NATS reconnect, or a ring change one of them has not
// seen yet. Each decides on its cached state, so each answer must be checked
// against the log before it is given:
//
//   - A decision with events appends them expecting the sequence its state
//     was folded to; the store refuses a stale expectation (a conflict).
//   - A decision without events (a rejection, or a command that produced
//     none) passes the same fence as a head check (eventlog.HeadChecker):
//     its record is written and it is answered only once the store has
//     confirmed that the history still ends at that sequence. That instant
//     lies between the request and the reply, and the log at that instant
//     is what the decision was made on, so the answer is linearizable per
//     aggregate. On Cassandra a head check is a Paxos read of the bucket
//     head; cmd/bench -rejections measures its cost.
//   - A query of the current state answered from the cache passes the
//     same head check first; after a failed one the state is reloaded,
//     and the reload is the answer. (Other views and asOf queries fold
//     the log itself.) Without it a node whose ring never changed during
//     a gossip split kept answering from a cache the other side's writes
//     had left behind.
//   - A failed fence drops the state, reloads it, and searches the whole
//     reloaded history for the command's own id (the other writer may have
//     run this very command) and reads its durable record; then it decides
//     once more. A second failed fence is ErrConflict. A failed write of
//     unknown outcome also drops the state, so nothing is decided on a
//     guess.
//
// # Idempotency: one outcome per command id
//
// Before deciding, the worker looks the command id up: in the replicated
// filter when there is one (Deps.Filter; a memory read), else in the
// command log. A decided command returns its recorded outcome
// (Result.Duplicate) and runs nothing. The filter's memory can be
// incomplete (it formed or re-formed within its window, a member was cut
// off or paused; see Completer): its misses are then checked against the
// command log. A cold load (a new owner, evicted state) reads the command
// log too, and each aggregate remembers its last decisions without events,
// so a retry that overtakes the filter gets the original rejection rather
// than a decision on newer state.
//
// Records are inserted, never replaced (commandlog.Inserter, or the
// DecisionWriter's transaction): when a second decision of one id is
// written, the first one stands and is the answer (commandlog.DecidedError).
// Commands are recorded in the same flush as their events. Without a
// DecisionWriter the two are separate writes (on Cassandra, two
// partitions): when the events are durable and the record write fails,
// the command stands, its history answers its retries, and a mender writes
// the record again with a back-off until the command log takes it
// (Stats.RecordsMended), so that the record exists once the store is back.
// A writer that dies between the two writes takes its mender with it; the
// next load of the aggregate repairs that: in the background it reads the
// records of the history's last commands (processed within
// Config.RepairWithin), newest first, until one stands, and writes the
// missing ones from the history (Stats.RecordsRepaired, RepairChecks).
// Such a record does not know the command's name or arguments; a retry is
// matched against it by id and aggregate only. Without it, a retry that
// came after enough newer commands to leave the cached aggregate's memory
// of its last 16 would have run again.
//
// The domain handlers must be deterministic in the state, the arguments and
// the command's timestamp: two owners deciding one command on the same state
// must reach the same outcome, and only the first is recorded.
//
// # Facts, and the two orders of a history
//
// Every history has a log order (the gap-free sequence: fencing, the
// outbox, history paging) and an event-time order (model.TimeKey:
// timestamp, stream, sequence). The cached state is the fold in event
// time: a load reads the history in event time (eventlog.EventsInTime, a
// page at a time), an appended event stamped after every known one is
// folded at once, and a late one makes the state refold from its nearest
// checkpoint (see model.Aggregate). Queries and asOf fold in event time.
//
// Facts (SubmitFacts) are events reported by their source, ingested
// without a command: a fact says what already happened ("the sensor saw
// the bulb switch on at 18:03"); it is not asked to be decided. The
// aggregate's owner checks it against the type's definitions (a defined
// versioned name, a payload that decodes) and against its history, and
// appends it:
//
//   - Idempotent on its identity (model.FactID: name and version, event
//     timestamp, stream id), through the aggregate's history itself: the
//     owner holds the identities of every fact in the history (rebuilt
//     from the log on every load, so also after the owner changed), and a
//     fact already there is answered as a duplicate with its sequence and
//     not stored again. The append is fenced like a command's, so two
//     owners cannot both store it: the second one's append conflicts, it
//     reloads, and finds the fact. No idempotency filter is involved.
//   - Placed in event time: a fact stamped before recorded events is late;
//     it is appended at the end of the log (log order) and the cached
//     state is refolded from its nearest checkpoint (event-time order).
//   - A fact stamped before the aggregate's initial event, or before any
//     initial event is known, is stored and waits (model.Waiting): it
//     applies once an initial event stamped earlier arrives. A fact stamped
//     after the aggregate's terminal event could never apply and is
//     refused (model.ReasonTerminated); nothing is stored. A request is
//     appended in rounds that end after an initial or terminal fact, so
//     the facts after one are checked against a history that holds it.
package executor
