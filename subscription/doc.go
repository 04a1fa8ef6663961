// Package subscription consumes the events the nodes publish into their
// JetStream stream (see package eventbus) and hands them to Go handlers:
// one aggregate type, a chosen set of event names, per aggregate in
// sequence order and without duplicates, with retries, dead letters,
// replays, and consumer groups that share the aggregates among processes.
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
// Whether an aggregate not seen yet may begin anywhere depends on where the
// subscription starts. A consumer created now FromBeginning expects
// sequence 1 first, so an aggregate whose first events the stream no
// longer holds is completed from history. Any other start (Live,
// FromSequence, FromTime) and any resumed consumer takes an unseen
// aggregate's first event as it comes.
//
// With an Events filter, the events left out make a jump at almost every
// event, and each jump costs a history read (the events read are passed
// over, not handed to the handler). When the filter is sparse and the gaps
// do not matter, set DisableGapFill.
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
// # Memory
//
// The duplicate table holds one entry per aggregate seen (handled, for a
// group member: only its share): about 104 bytes for a 36-character UUID
// id on 64-bit Go, so some 100 MB per million aggregates. It is not
// bounded; a group divides it by Members. Besides it, up to MaxAckPending
// events are fetched ahead.
package subscription
