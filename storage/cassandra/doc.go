// Package cassandra is the production store: an eventlog.Log and a
// commandlog.Log kept in Apache Cassandra (4.x or 5.x, native protocol 4),
// through github.com/gocql/gocql.
//
//	s, err := cassandra.Open(ctx, cassandra.DefaultConfig())
//	if errors.Is(err, cassandra.ErrUnreachable) { … retry with backoff … }
//	defer s.Close()
//	events, commands := s.EventLog(), s.CommandLog()
//
// The Store owns the connections: Store.Close closes them. The EventLog and
// CommandLog are views; their Close methods only mark the view closed. The
// EventLog is also the store's eventlog.Outbox (see Outbox below).
//
// # Tables
//
//	events (aggregate_type text, aggregate_id text, bucket int, sequence bigint,
//	        head bigint STATIC,
//	        event_time timestamp, stream_id text,
//	        processing_id timeuuid, processing_id_text text, processing_time timestamp,
//	        name text, version int, characteristics tinyint, payload blob,
//	        command_id text, event_id text,
//	        PRIMARY KEY ((aggregate_type, aggregate_id, bucket), sequence))
//	event_buckets (aggregate_type text, aggregate_id text, bucket int, first_sequence bigint,
//	        PRIMARY KEY ((aggregate_type, aggregate_id), bucket))
//	events_by_time (aggregate_type text, aggregate_id text,
//	        event_time timestamp, stream_id text, sequence bigint,
//	        indexed_through bigint STATIC,
//	        … the other columns of events …,
//	        PRIMARY KEY ((aggregate_type, aggregate_id), event_time, stream_id, sequence))
//	commands (command_id text PRIMARY KEY, aggregate_type, aggregate_id, command,
//	        outcome, first_sequence, last_sequence, code, reason, message, at)
//	settings (name text PRIMARY KEY, value text)
//	outbox (writer text, bucket bigint, aggregate_type text, aggregate_id text,
//	        first bigint, last bigint,
//	        PRIMARY KEY ((writer, bucket), aggregate_type, aggregate_id, first))
//	        -- every row written USING TTL Config.OutboxTTL; time-window compaction
//	outbox_writers (writer text PRIMARY KEY, published bigint, last bigint)
//
// Open creates the keyspace (replication from Config) and the tables when
// Config.CreateSchema is set, and waits for schema agreement. Table names
// take Config.TablePrefix. Times are stored as timestamps, at millisecond
// precision, and read back in UTC (model.NormalizeTime). A processing id
// that is a version-1 UUID in canonical lower-case form — what the executor
// makes — goes into the timeuuid column; any other string (the contract lets
// a caller store any processing id, and the conformance suite does) goes
// into processing_id_text instead, so that every id reads back exactly.
// Absent values are written as unset, never null, so appends write no
// tombstones.
//
// # Buckets
//
// An aggregate's history is split into buckets, one partition each, so that
// partitions stay bounded whatever the history's length. Config.BucketSize
// (default 1000 events) is a soft target. event_buckets indexes them: bucket
// b starts at first_sequence. Buckets are numbered densely from 0.
//
// THE RULE. The bucket that the append following sequence e goes into is a
// deterministic function of the history up to e:
//
//   - e == 0: bucket 0 (first sequence 1);
//   - otherwise, with B the bucket holding event e and F its first sequence:
//     if e-F+1 >= BucketSize, bucket B+1, whose first sequence is e+1;
//     else bucket B.
//
// The whole append goes into that one bucket: an append never spans
// partitions, so a bucket may exceed BucketSize by less than one append.
// Because the rule only depends on the history up to e, two writers with the
// same Expected compute the same partition, and a stale writer's first
// sequence e+1 already lives in exactly the partition it computes. One
// single-partition conditional batch therefore fences every race. For the
// same reason BucketSize is part of the data format: the first Open records
// it in the settings table (a conditional insert), and Open refuses another
// value with ErrBucketSize — two nodes disagreeing on it would compute
// different partitions and no longer fence each other.
//
// # Append
//
// Append(expected e, events e+1 … e+n) of one aggregate:
//
//  1. Find B and F for e: from the position cache (below) when it knows the
//     aggregate's head is e; else from event_buckets, read newest first up
//     to the newest bucket whose first sequence is <= e. No such bucket: the
//     writer is ahead, a conflict. The cache saying the head is beyond e is
//     a certain conflict, answered without a round trip.
//  2. Apply THE RULE. If the target is a new bucket B+1, first read the head
//     of B at the serial consistency (a Paxos read, linearizable with the
//     conditional batches): unless it is exactly e — e might lie inside an
//     append that filled B — the append is a conflict. Then write the index
//     row (B+1, e+1) with a plain INSERT: deterministic, idempotent, and the
//     index only ever takes plain writes. e == 0 writes the row (0, 1).
//  3. Run one conditional batch in the target partition:
//     UPDATE events SET head = e+n WHERE … IF head = e (the existing bucket)
//     or IF head = null (a new bucket), plus the n INSERTs of the events,
//     without conditions of their own; all of it goes through Paxos together.
//  4. Applied: the events are durable. Not applied: eventlog.ErrConflict,
//     naming the head the batch found, and nothing was written (the batch
//     is atomic). A driver error (timeout, unavailable, …) or a cancelled
//     context: eventlog.ErrUnavailable — the outcome is unknown, the caller
//     must reload before deciding again.
//
// Why it fences: a partition's head only changes through a conditional
// batch whose condition names its current value, so two writers with the
// same e target the same partition and at most one of them applies. Once a
// bucket's head is e with e-F+1 >= BucketSize, no conforming writer ever
// targets that bucket again (every writer expecting e goes to B+1, every
// writer expecting less fails on the head), so the serial read in step 2
// cannot be invalidated before the index row is written.
//
// Events rows and heads are only ever written inside conditional batches,
// never by plain writes: mixing the two on the same rows lets a plain write
// with a later timestamp shadow a Paxos write (kafka-journal PR #532).
//
// Append runs the entries of a batch concurrently, at most
// Config.AppendConcurrency at a time, and returns one error per entry; each
// entry is atomic, entries are independent. The driver's retry policy never
// retries a conditional batch unless the coordinator refused it unexecuted
// (overloaded, bootstrapping): a retried conditional write whose first
// attempt applied would fail its own condition and report a conflict for a
// write that landed. Idempotent requests (reads, the index row, command
// records) are retried on another node up to twice.
//
// # Reads
//
// ReadPage finds the bucket holding from in event_buckets (newest first, so
// a read near the end is one short query), selects sequence >= from with a
// LIMIT of one more than the page still needs (the extra row tells whether
// more follow), and goes on into later buckets until the page is full or
// the buckets end. next is 0 at the end of the history; after a page that
// filled up exactly at the end of a bucket that is not the newest, it is the
// sequence after the page, whose read may then be empty with 0, as the
// eventlog contract allows.
//
// LastSequence is the head of the newest bucket that holds events. The
// newest bucket can be empty — its index row was written but the writer
// failed before its batch applied — and is then skipped; only the newest
// can be (opening B+2 requires a head in B+1). The next rightful append
// fills it.
//
// # Event time
//
// The EventLog is an eventlog.TimeReader: it reads a history in event-time
// order (model.TimeKey: event timestamp, stream id, sequence) a page at a
// time, so a fold in event time — every state, view and asOf — needs
// memory for one page, not the whole history. The events table cannot
// serve that order (it is clustered by sequence), so events_by_time keeps
// a second copy of every event, in the shape of the Concursus paper's
// table, PRIMARY KEY((aggregate_type, aggregate_id), event_timestamp,
// stream_id), with the sequence added to the clustering key (it breaks
// ties between events of one stream stamped in the same millisecond, and
// makes the key unique). ReadTimePage is then one slice of one partition:
//
//	SELECT indexed_through, … FROM events_by_time WHERE aggregate_type = ? AND aggregate_id = ?
//	    AND (event_time, stream_id, sequence) > (?, ?, ?) LIMIT page+1
//
// (text clusters in UTF-8 byte order and timestamp as a signed number, so
// the order is model.TimeKey's, times before 1970 included; a key finer
// than a millisecond is rounded up to the next one, as events are stored
// to the millisecond; the extra row says more=true).
//
// Writes. An append's conditional batch lives in the bucketed events
// partition, and a conditional batch cannot span partitions, so the time
// table cannot be written in it. Once the batch applied, the append writes
// its rows with an unlogged batch into the aggregate's one events_by_time
// partition (Cassandra applies a single-partition batch atomically, as one
// mutation). If that write fails the append does NOT fail — its events are
// durable and acknowledged — it is logged, and reads repair the table.
// Only plain writes of values copied from events ever reach this table,
// so the rule against mixing Paxos and plain writes on the same rows
// holds.
//
// indexed_through is the completeness claim: every sequence up to it has
// its row. A batch sets it only together with, or after, rows that make
// it true: an append claims its last sequence only when the table is
// known to hold everything up to its Expected — from a per-process cache
// of claims this process wrote or read (claims never become false); on a
// cache miss it writes its rows without a claim (reading indexed_through
// first would cost every cold aggregate's append a round trip), and the
// next read repairs the claim. Claiming blindly would be wrong: after
// an append whose write failed, the next append's claim would cover the
// hole. A claim that lands late and moves indexed_through back is
// harmless (it was true): it only makes a read repair more than it must.
//
// Reads repair. ReadTimePage reads the log's head (LastSequence) before
// the page; if indexed_through (carried by the page's rows, or read alone
// when the page is empty) is behind the head, it copies the events after
// indexed_through from the events table (ReadPage, 500 at a time) into
// events_by_time, claiming each page after its rows (batches of at most
// 100 rows and 1 MiB of payload, so each fits max_mutation_size), and reads
// the page again. So a page reflects every append acknowledged before the
// call, whatever became of the writes into the time table; concurrent
// repairs and appends write identical rows and true claims. The same
// repair builds the table lazily for a keyspace written before it
// existed: Open creates the table (CREATE TABLE IF NOT EXISTS), and the
// first read of each aggregate in event time copies its history, a page
// at a time. A repair that fails fails the read (ErrUnavailable); the
// next read goes on from the last claim.
//
// The costs: every append writes its events twice (the second write is a
// plain single-partition batch, no Paxos), the table doubles the events'
// storage, and every
// ReadTimePage reads the head first (two short queries) besides its page.
// The partition is per aggregate, not bucketed: a bucketed event-time
// table would need a scatter-gather merge over buckets, because late
// events land in any of them. Cassandra copes with wide partitions far
// beyond our histories (it pages within a partition, and the read is a
// clustering slice), but one aggregate with millions of events or
// gigabytes of payload would make a partition large enough to slow
// compaction and repair; such a history would need time-bucketed
// partitions (by event day, say) read in bucket order. Do not edit the
// table by hand: a claim must stay true. Deleting an aggregate's whole
// partition (or truncating the table) is safe only while no node runs: a
// node's cache of claims would outlive the rows.
//
// # Position cache
//
// A bounded LRU (Config.CacheSize aggregates) remembers, per aggregate, the
// newest bucket known to hold its head, that bucket's first sequence and the
// head. It is filled only from what was read (LastSequence, a ReadPage that
// reached the end of the history) or written by a batch that applied, and
// only moves forward, so every entry is true of some moment of the history.
// An append whose Expected equals the cached head needs no read before its
// batch; any other append reads the index. An entry is dropped on every
// conflict or error of an append.
//
// # Consistency
//
// Reads and plain writes use Config.Consistency (LOCAL_QUORUM), conditional
// batches and the serial reads Config.SerialConsistency (LOCAL_SERIAL). The
// fence does not depend on the read consistency; a weaker one only makes
// reloads see older histories, which the fence then refuses.
//
// # Command log
//
// Put writes each record with its own single-partition INSERT … USING TTL
// Config.CommandTTL (default 7 days; 0 keeps records forever), at most
// Config.AppendConcurrency at a time; a record replaces an earlier one of
// its command id and restarts its TTL. Get selects by id and returns
// commandlog.ErrNotFound when there is none. Cassandra expires records by
// itself (TTL granularity is one second), so CommandLog does not implement
// commandlog.Pruner.
//
// # Outbox
//
// The EventLog implements eventlog.Outbox, the record package eventbus
// keeps of appends whose events may not be on the bus yet. A writer (a
// node id) marks each batch in a time bucket before appending it; its
// watermark later says every bucket up to it is published.
//
// outbox holds the marks, one partition per (writer, bucket), clustered by
// aggregate type, id and first sequence — the order Marks returns (text
// compares as UTF-8 bytes). Mark writes all marks of a call as ONE
// unlogged batch into that one partition (single-partition batches are
// applied atomically and cost one mutation; calls of more than 16384
// marks are split), each row USING TTL Config.OutboxTTL (default 7 days).
// Nothing ever deletes a mark: the watermark makes old buckets dead data,
// no reader goes there again, and the TTL removes whole partitions, which
// time-window compaction (one-day windows) drops as whole SSTables. A
// delete per mark would put tombstones in the hot partition every write
// goes to; there are none. Marks reads the partition in pages of 1000
// rows.
//
// outbox_writers holds one row per writer. Its last column is the newest
// bucket the writer marked: before Mark writes the batch into a bucket
// newer than the last one this process recorded for the writer (kept in
// memory), it writes last = bucket with a plain write, and both writes are
// done when Mark returns nil. The row goes first, so no mark is ever in a
// bucket the position does not reach (a takeover reads Published+1 ..
// Last); a failed batch only leaves an empty bucket. Concurrent Marks of
// one writer serialise their writes of last and give them timestamps
// that grow with the bucket, so a late write of an older bucket cannot
// shadow a newer one: last only moves forward, one write per bucket (every
// 5 s with the publisher's defaults), not per call.
//
// published, the watermark, is only written by conditional writes:
// UPDATE … SET published = b IF published < b, or IF published = null for
// a writer without one. Usually one node moves a writer's watermark (its
// own publisher), but a restarted writer and a node taking it over, or two
// nodes whose rings disagree, can race; with plain writes a late, smaller
// value could win and the watermark move back, republishing buckets
// already on the bus. The cost is one Paxos round per bucket and writer.
// SetPublished deletes nothing.
//
// Writers scans outbox_writers (one row per node that ever wrote, until
// Forget). Forget deletes the writer's row and leaves its marks to their
// TTL: its caller promises they are all published, so they are dead data.
// The row deletion is a plain write; the published cell it removes was
// written by Paxos with a timestamp of the coordinator's clock, so with a
// client clock far behind the servers' a forgotten row can keep its
// published cell (and reappear with last 0, not pending) until the next
// Forget.
//
// All errors wrap eventlog.ErrUnavailable (or ErrClosed) as the rest of
// the store's do; an invalid mark fails the call with
// eventlog.ErrInvalidAppend before anything is written.
//
// # Limits
//
// One append holds at most 65534 events (one batch), and its mutation must
// fit Cassandra's max_mutation_size (half the commit log segment, 16 MiB by
// default). Single-partition batches are exempt from Cassandra's batch-size
// warning and failure thresholds.
//
// # Tests
//
// The tests need a real Cassandra: start one with `scripts/cassandra.sh
// start` and set CONCURSUS_CASSANDRA=127.0.0.1:9042; without it they skip.
// Each test works in a keyspace of its own, dropped when it ends.
package cassandra
