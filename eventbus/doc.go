// Package eventbus carries durable events to consumers over NATS, at least
// once, in sequence order per aggregate.
//
// # Subjects
//
// Publisher puts each event on
// <prefix>.events.<aggregateType>.<name_version>.<aggregateToken>
// (api.EventSubject) with the aggregate id, sequence and event id in headers, and the event id
// as Nats-Msg-Id so that a JetStream stream over those subjects stores an
// event published twice once. The body is the event as JSON (model.Event).
//
// With a StreamConfig (node.Config.Stream, cmd/node --stream) the events are
// also kept in a JetStream stream over <prefix>.events.>, created or updated
// by EnsureStream, so consumers can replay history from the bus (package
// subscription reads it).
//
// # At least once: the outbox
//
// An event is "on the bus" when the bus acknowledged it: with a stream, the
// stream's PubAck (it is stored); without one, the server's answer to a
// flush (it was received and handed to the subscribers present). Between
// the append and that acknowledgement a node can die, or NATS can be down
// for longer than the client's reconnect buffer covers. The outbox closes
// that gap:
//
//   - Before a batch is appended, the executor calls Prepare with one mark
//     per append (aggregate, first and last sequence). The marks are written
//     to the store's eventlog.Outbox under this node's id (the writer) in a
//     time bucket (BucketLength, 5 s by default): with the embedded store in
//     the same bbolt transaction as the append, with Cassandra as one
//     unlogged batch into the (writer, bucket) partition just before it. A
//     batch whose marks cannot be written is not appended.
//   - Once the append is durable the aggregate's worker calls Publish; one
//     sending goroutine publishes jobs in arrival order (asynchronously to
//     JetStream, with the PubAcks awaited in order by a second goroutine),
//     so one aggregate's events leave in sequence order.
//   - A bucket is complete when time has moved past it and every mark in it
//     was acknowledged. The writer's watermark (Outbox.SetPublished) moves
//     over complete buckets, one small write per bucket at most.
//   - A mark whose publication failed (a PubAck error or timeout, a
//     disconnected client, a full queue) makes its bucket dirty; the
//     maintenance loop then reads the bucket's marks and publishes their
//     events again from the log, oldest bucket first, and the watermark
//     waits for it. So does a write of unknown outcome (the events may be
//     durable).
//   - At start a publisher takes over its own writer's buckets above the
//     watermark (a restart with the same node id), and Recover publishes a
//     dead writer's buckets above its watermark. A Sweeper does that
//     round after round for every writer its caller claims: a node takes
//     over a dead member's outbox when it owns the writer's id on the
//     ring, and a lone node takes over every other writer it finds (the
//     claim is package node's; the sweep, and forgetting a writer gone for
//     ForgetAfter, are here).
//
// Republished events carry their original event ids, so JetStream drops
// those it already holds (within the stream's Duplicates window) and
// consumers dedupe the rest by event id or sequence.
//
// Why an outbox and not a publication position per partition: the log is
// keyed by aggregate, so "what is after position P in partition X" is not
// a query either store can answer without a second index written with
// every append; the outbox is that index, kept only for the few seconds an
// event is in flight, and bucketed in time so a watermark releases it
// without a delete per event (tombstones in Cassandra).
//
// # Order
//
// While an aggregate stays with one node and NATS stays up, its events
// reach the bus in sequence order. An event republished from the outbox
// (after a NATS outage, or by the node that took over a dead writer) can
// arrive after later events of its aggregate published by the live path.
// Consumers that need order use package subscription, which restores it:
// it holds a later event back and fills the gap from the log through the
// nodes' history API (<prefix>.history.<type>).
//
// # Inside
//
// A Publisher is three parts. The ledger (ledger.go) is the bookkeeping:
// per time bucket the marks in flight, whether it is dirty and its
// generation, and the watermark; it is pure (time is an argument, no I/O)
// and its state diagram is on the type. The sender (sender.go) is the one
// place an event becomes a message and is published with its
// acknowledgement awaited, for live publication and republication alike.
// The Publisher itself owns the goroutines (send, acknowledge, maintain)
// and the outbox writes, and calls the ledger under its mutex.
//
// # Cost
//
// One outbox write per batch (not per command) with Cassandra, none extra
// with the embedded store, one watermark write per bucket, and, with a
// stream, a PubAck per event; README.md has the measured throughput.
package eventbus
