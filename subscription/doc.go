// Package subscription consumes the events the nodes publish into their
// JetStream stream (see package eventbus) and hands them to Go handlers:
// one aggregate type, a chosen set of event names, per aggregate in
// sequence order (or in event-time order after a settle window) and
// without duplicates, with retries, dead letters, replays, and consumer
// groups that share the aggregates among processes.
//
//	var h subscription.Handlers
//	subscription.On(&h, "created_0", func(ctx context.Context, e subscription.Event, p Created) error {
//		return db.InsertBulb(ctx, e.AggregateID, p.Wattage)
//	})
//	sub, err := subscription.Subscribe(ctx, subscription.Config{
//		Conn: nc, Name: "billing", AggregateType: "lightbulb",
//	}, &h)
//	…
//	sub.Drain(ctx) // at shutdown
//
// # The path of an event
//
// Each subscription has one durable pull consumer on the events stream
// (filtered to <prefix>.events.<type>.> or to the listed names) and one
// worker goroutine that takes its events in stream order, one at a time,
// and acknowledges each after its handler succeeded:
//
//	delivered ─► not an event? ───────────────────────────► dead letter, ack
//	    │
//	    ├─► another group member's aggregate? ────────────► ack (AckedNotMine)
//	    ├─► sequence <= last handled? ────────────────────► ack (Duplicates)
//	    ├─► sequence > last+1? ─► read last+1..seq-1 from history, handle each
//	    ▼
//	handler ─► error: retry after Backoff … MaxAttempts ──► dead letter, ack
//	    │
//	    └─► nil ─► last handled = sequence, ack
//
// Since the worker handles one event at a time, the retries happen in
// the process, and nothing is acknowledged out of turn, an aggregate's
// events reach its handler in sequence order. The price is that a
// failing event holds the whole subscription up (all aggregates) for its
// retries: with the defaults, five calls and 1.5 s of waiting. Handlers
// are never called concurrently within one subscription.
//
// # Duplicates
//
// The nodes publish an event at least once, and JetStream's de-duplication
// window (the event id as Nats-Msg-Id) only covers re-publications within
// a couple of minutes. The subscription keeps, in memory, the last
// sequence handled per aggregate: an event at or below it is acknowledged
// and dropped without calling the handler. Events of one aggregate carry
// gap-free sequences 1, 2, 3 … assigned by the owner, so the sequence is
// all the table needs.
//
// # Gaps
//
// An event whose sequence is more than one above the last handled one
// means events are missing: not published (a node died between append and
// publish), dropped by the stream's limits, or left out by the Events
// filter. The subscription reads them from the nodes' history API
// (api.HistorySubject, paging through api.HistoryReply.Next) and hands
// them over in order, with Event.Source FromHistory, before the event
// that revealed the gap; when they reach the stream later they are
// duplicates. A failed read (no node answers, a timeout) is retried after
// Backoff for up to GapTimeout; then the rest of the gap is skipped, with
// a warning and Stats.GapsSkipped, and the events go on.
//
// Where an aggregate not seen yet begins depends on where the subscription
// starts. A consumer created now FromBeginning expects sequence 1 first,
// so an aggregate whose first events the stream no longer holds is
// completed from history. A resumed consumer first looks up where the
// aggregate stood (see "Restarts"). Any other start (Live, FromSequence,
// FromTime) takes an unseen aggregate's first event as it comes.
//
// With an Events filter, the events left out make a jump at almost every
// event, and each jump costs a history read (the events read are passed
// over, not handed to the handler). When the filter is sparse and the gaps
// do not matter, set DisableGapFill.
//
// # Event-time order
//
// A history has two orders (DESIGN.md, "Two orders of one history"): the
// log order of its sequences, and the event-time order of its events'
// stamps, model.TimeKey (timestamp, stream id, sequence). Facts from the
// field arrive late: an event may be stamped before events of its
// aggregate already published. Config.Order EventTime hands each
// aggregate's events over in event-time order:
//
//	accepted (in log order: dedup, gaps, as above)
//	    │
//	    ├─► stamped before an event of its aggregate already handed over?
//	    │       └─► handed over at once, Event.Late ───────► ack
//	    ▼
//	held, unacknowledged, for SettleWindow from when it was received
//	    │
//	    ▼ its window passed (or more than MaxHeld are held: the oldest)
//	handed over with the events of its aggregate stamped before it,
//	in event-time order ──────────────────────────────────► ack each
//
// Duplicates and gaps are still found in log order, as they are
// complete: a held event's sequence counts as seen, so its redelivery is
// recognised, and a gap is read from history and held with the rest.
//
// The settle window is the paper's watermark, kept per aggregate and
// measured on the subscriber's clock (Config.Clock): an event waits
// SettleWindow after it was received, so an event of its aggregate
// stamped earlier and received less than SettleWindow after it still goes
// before it. The stamps themselves are never compared with the clock, so
// sources with skewed clocks or a backlog replayed from the beginning
// order just as well. What comes later than that is late: an event is
// late when an event of its aggregate with a later TimeKey was handed
// over before it. A late event is handed over at once, with Event.Late
// set, and never dropped: a handler that keeps a view folds it in where
// it belongs (or recomputes), one that cannot may log or count it. An
// event stamped after everything handed over is not late, however long
// it took to come. The node's own late mark (api.HeaderLate) is
// consulted only where the subscription cannot know: for an aggregate
// with nothing handed over since a resumed consumer (or one that starts
// elsewhere than the beginning) came up.
//
// Guarantees, per aggregate: each event is handed over once per run (at
// least once across crashes, as below); the events not marked late come
// in strictly increasing TimeKey order, after everything handed over
// before them; events received within SettleWindow of each other come in
// TimeKey order, none late (unless MaxHeld forced an early release). Across
// aggregates there is no order. Every event waits up to SettleWindow
// (more while the handlers are busy): event time costs latency.
//
// Acknowledgement. A held event's message is not acknowledged: JetStream
// must keep it until its handler has run, or a crash would lose it. It is
// acknowledged once handled (an event read from history has no message
// until the stream delivers it too; that copy is then kept with the held
// event and acknowledged with it). So:
//
//   - AckWait must exceed SettleWindow (the default is 30s, or twice the
//     window when longer), and a message held longer than AckWait/2 (the
//     handlers were slow, the cap was not reached) is told InProgress, so
//     JetStream does not deliver it again; if it does anyway, the
//     redelivery is recognised and kept with the held event.
//   - MaxAckPending counts the held events. Its default in event-time
//     order is MaxHeld+128: the window is honoured while fewer than
//     MaxHeld events arrive within one, and beyond that (a backlog, a
//     replay from the beginning) the oldest leave early rather than the
//     consumer stalling. A MaxAckPending at or below MaxHeld instead caps
//     the consumer at MaxAckPending events per SettleWindow.
//   - Acknowledgements come out of stream order, and the ack floor stops
//     below the oldest held event. A Stop or Drain leaves the held events
//     unacknowledged (they are not handed over early), and the next
//     Subscribe, which resets the consumer to its ack floor, receives them
//     again, together with the events after them that were handled
//     already: a restart hands over again up to a settle window's worth of
//     events (at least once, as for any crash).
//
// Memory: at most MaxHeld events are held at once (default 4096, all
// aggregates together, events read from history included); one more
// makes the event received first leave early, with the events of its
// aggregate stamped before it (Stats.HeldOverflow), so that each
// aggregate's order still holds for them. Besides the held events, the
// order keeps the last TimeKey handed over per aggregate (some 150 bytes
// per aggregate on top of the duplicate table) for as long as the
// subscription runs. Stats.Held, Released, Late and HeldOverflow show the
// order at work.
//
// Replays of dead letters are handed over at once, not held, and never
// marked late.
//
// # Groups
//
// Group{Members: n, Member: i} runs member i of n: its own durable
// consumer <Name>-<i>of<n> over the same events, handling only the
// aggregates with api.Partition(n, type, id) == i and acknowledging
// the others unhandled. Every member thus sees every event, but each
// aggregate is handled by one member only, in order. The partition is the
// cluster's own hash (xxhash of the length-prefixed type and id, pinned by
// golden tests as part of the wire contract), so it never changes between
// releases and any language can compute it. A member that restarts
// resumes its own consumer.
//
// Membership is static. Changing Members moves almost every aggregate to
// another member, and needs new consumers: stop (Drain) every member of
// the old group, note the lowest ack floor among their consumers
// (`nats consumer info`), start the new group with Start
// FromSequence(floor+1) (its consumers have new names, so Start applies),
// then delete the old consumers. Events between the lowest floor and a
// member's own floor are handled again (at least once). Never run two
// generations at once: an aggregate would have two members.
//
// # Dead letters
//
// An event whose handler failed MaxAttempts times (or once with an error
// marked Permanent, such as a payload that does not decode) is published,
// with a JetStream acknowledgement, on
// api.DeadLetterSubject(prefix, Name, type, name_version) with its body
// and headers plus api.HeaderDeadError, HeaderDeadAttempts,
// HeaderDeadConsumer, HeaderDeadSubject and HeaderDeadStreamSeq; then the
// original is acknowledged and the aggregate moves past it (the next event
// is not a gap). If the dead letter cannot be stored, it is retried and
// the subscription waits: an event is never acknowledged without being
// handled or dead-lettered. The stream DeadLetterStreamName(prefix) keeps
// the dead letters until they are replayed; EnsureDeadLetterStream
// creates it, and Subscribe calls it.
//
// ListDeadLetters shows a consumer's dead letters; ReplayDeadLetters
// publishes them (or chosen ones) on ReplaySubject(prefix, Name) and
// deletes them. `node deadletters list|replay` does both from the command
// line.
//
// # Replays
//
// Every subscription also consumes ReplaySubject(prefix, Name) with the
// durable <Name>-replay, shared by the members of a group: whichever
// member takes a replay handles it, whatever the aggregate. Replays skip
// the group share, the duplicate and the gap checks (a replay is an
// explicit request), get the same retries, and go to the dead letters
// again if they keep failing. A handled replay is deleted from the
// dead-letter stream. Handlers see Event.Source FromReplay.
//
// # Restarts: what survives
//
// JetStream keeps each consumer's ack floor: a subscription that stops
// (or dies) and subscribes again under the same name resumes after the
// last event it acknowledged; Start only applies to a consumer that does
// not exist yet. On resuming, Subscribe resets the consumer to its ack
// floor, so the events delivered but not acknowledged by the previous run
// come again at once and in stream order, rather than after AckWait
// behind newer ones (where an aggregate's older event would look like a
// duplicate). Hence a consumer must be used by one process at a time.
//
// The duplicate table lives in memory only. After a crash, the events that
// were handled but whose acknowledgement JetStream had not processed are
// handled again: delivery is at least once, and handlers should be
// idempotent (the event id and the aggregate's sequence make good keys).
// A graceful Stop or Drain waits for the acknowledgements to be processed,
// so it hands over without repeats.
//
// The stream does not hold every aggregate's events in sequence order: an
// event published again from the outbox (its writer died before
// publishing it, and another node took over) lands after later events of
// its aggregate. So a resumed subscription cannot take an unseen
// aggregate's first event as it comes: a late copy of an event handled
// (from history) before the restart would be handed over again, and the
// events after it filled from history again; a later event would make the
// late copies still to come look like duplicates, and they were never
// handled. Before the first event of an aggregate it has not seen, a
// resumed subscription asks the stream for the aggregate's last messages
// on its subjects at or below the ack floor it resumed from (one
// JetStream direct get, answered from the stream's subject index: event
// subjects end in the aggregate's token, api.EventSubject) and starts the
// aggregate at the highest sequence there. Stats.ResumeLookups counts
// them. A lookup that keeps failing (Backoff, up to GapTimeout), or a
// stream without AllowDirect (made by an older node), leaves the
// aggregate to be taken as it comes, with a warning
// (Stats.ResumeLookupsFailed). An aggregate whose messages the stream's
// limits removed is taken as it comes too.
//
// A lookup costs a round trip, once per aggregate per resume: in
// BenchmarkResumeLookups (one server on this 2-core machine) the first
// events after a resume went at about a quarter of the rate of events of
// aggregates already known (some 5,000 against 20,000 a second).
//
// With a replicated stream (Replicas > 1) a follower may answer the
// lookup. One that lags behind the ack floor knows less: a lower position
// repeats events, and no message at all falls back to taking the first
// event as it comes. The stream's replicas must be current for a resume
// to be exact.
//
// # Reconnects
//
// An acknowledgement is a message like any other: one sent while the
// connection was going down, or received by a nats-server that died
// before it stored it, is lost, and so is a delivery that never arrived.
// JetStream would then hold the ack floor below events handled already
// until AckWait delivers the lost ones again, and a Stop in between could
// not settle: the next run would hand over everything since the floor a
// second time. So each time the connection comes back, the subscription
// resets its consumer to the ack floor while it still knows what it
// handled: the events since come again in stream order, the handled ones
// are dropped as duplicates (acknowledged, no handler call) and the floor
// catches up (Stats.Resyncs counts the resets). Replays of dead letters
// are not reset: a replay whose acknowledgement was lost is handled again
// after AckWait.
//
// # Memory
//
// The duplicate table holds one entry per aggregate seen (handled, for a
// group member: only its share): about 104 bytes for a 36-character UUID
// id on 64-bit Go, so some 100 MB per million aggregates. It is not
// bounded; a group divides it by Members. Besides it, up to MaxAckPending
// events are fetched ahead. In event-time order, add the held events (at most
// MaxHeld) and the last TimeKey per aggregate (see "Event-time order").
package subscription
