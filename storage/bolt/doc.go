// Package bolt is the embedded, durable store: the single-node default. One
// bbolt file (go.etcd.io/bbolt) holds both the event log and the command log.
//
//	db, err := bolt.Open(filepath.Join(dataDir, "concursus.db"), bolt.DefaultOptions())
//	if err != nil { … }
//	defer db.Close()
//	events, commands := db.EventLog(), db.CommandLog()
//
// The DB owns the file: DB.Close closes it. The EventLog and CommandLog are
// views of it; their Close methods only mark the view closed (later calls on
// it return ErrClosed) and leave the file open for the other view, so the
// code that opened the DB must also close it. The DB itself is the event
// log's eventlog.Outbox (see Outbox below).
//
// # Why bbolt
//
// The executor already batches the appends of many aggregates into one
// eventlog.Log.Append call. bbolt runs one read-write transaction at a time
// and makes it durable with one fsync on commit, so a whole batch — dozens of
// aggregates — costs one fsync: the single writer is no bottleneck because
// the executor is the only writer and it batches. Its keys live in one
// ordered B+tree, so reading an aggregate's history is one cursor range scan
// and finding its last sequence is one seek. It does no background
// compaction that would take CPU from the command path on a small (2-core)
// machine, it keeps everything in one file, and it is pure Go with a small
// dependency tree.
//
// We measured the alternative. A Pebble (LSM) store with the same contracts
// was 2.5–4× cheaper in CPU per decision in a storage-only benchmark
// (batch 128: ~10 µs vs ~26 µs; its advantage grows with the data), but
// through the node's whole command path (cmd/bench, C=128, K=10,000, on 2
// cores) it raised throughput by only about 4% (14.7k vs 14.1k commands/s):
// the path is bound by the serial group commit and by NATS and JSON work,
// not by the store's CPU. For those 4% it would have cost some 25 more
// modules (cgo zstd among them), 40 s more build time, background
// compactions competing for the 2 cores, and a store that ends the process
// when a WAL sync fails. So bbolt it is; the decision is worth revisiting
// for nodes holding much larger histories.
//
// The trade-offs: write throughput is bound by one fsync per batch (see
// BenchmarkAppendBatch and BenchmarkDecisions; Options.NoSync lifts it at the price of durability),
// and the file never shrinks — pages freed by Prune are reused, not returned
// to the file system.
//
// # Layout
//
// Buckets:
//
//	meta              "format" → storage format version (1 byte, currently 2)
//	events            eventKey(type, id, seq) → encoded event
//	events_by_time    aggregate prefix ‖ time ‖ esc(stream) ‖ seq → empty
//	events_by_time_through  aggregate prefix → sequence the index is complete through
//	commands          command id → encoded record
//	commands_by_time  8-byte time key ‖ command id → empty
//	outbox            esc(writer) ‖ bucket ‖ esc(type) ‖ esc(id) ‖ first → format byte ‖ last
//	outbox_writers    writer → format byte ‖ published ‖ last
//
// An event key is uvarint(len(type)) ‖ type ‖ uvarint(len(id)) ‖ id ‖
// 8-byte big-endian sequence. The length prefixes make the aggregate part
// prefix-free: no aggregate's key prefix is a prefix of another's, so a
// prefix scan never strays into a neighbouring aggregate ("a" and "ab",
// type "a/b" id "c" and type "a" id "b/c"), and the big-endian sequence makes
// keys sort in sequence order within an aggregate. LastSequence seeks to the
// end of the aggregate's range and steps back one key.
//
// Values start with a format byte (1) followed by a compact binary encoding:
// varints for numbers and millisecond timestamps, length-prefixed bytes for
// strings and the payload. The aggregate and sequence are not repeated in the
// value; they come from the key. Timestamps are kept at millisecond
// precision and read back in UTC, like every other store.
//
// In the outbox keys, bucket is 8 bytes big-endian with the sign bit
// flipped and first and last 8 bytes big-endian; esc(s) is s with every
// 0x00 byte written 0x00 0xFF, then the terminator 0x00 0x01. A length
// prefix would not do here: it sorts strings by length first, and a
// bucket's marks must iterate by type and id as bytes compare (the order
// Marks returns, and Cassandra's). The escaped form keeps byte order —
// the terminator sorts before any byte and before an escaped 0x00, so
// "a" < "ab" < "b" — and is prefix-free like the event keys. In
// outbox_writers, published and last are 8 bytes big-endian each.
//
// The time key of the command index is the record's At in Unix milliseconds,
// big-endian with the sign bit flipped so that times before 1970 sort first;
// Prune walks it from the start and deletes records (and their index
// entries) in bounded transactions.
//
// The events_by_time key is the event key's aggregate prefix, the event
// timestamp in Unix milliseconds (8 bytes big-endian, sign bit flipped),
// esc(stream id) as in the outbox keys (byte order, unlike a length
// prefix: "ab" sorts before "b"), and the 8-byte big-endian sequence: so an
// aggregate's keys sort as model.TimeKey does. See "Event time" below.
//
// # Append
//
// Append validates every entry (eventlog.CheckAppend) and encodes its events
// before taking the write lock, then runs ONE transaction for the whole
// batch. Inside it each entry's last sequence is compared with Expected; a
// mismatch gives that entry a conflict and writes nothing of it, while the
// other entries go on. If no entry had anything to write the transaction is
// rolled back instead of committed (no fsync). If the commit fails, every
// entry that would have been written gets an error wrapping
// eventlog.ErrUnavailable, and none of them was written.
//
// # Event time
//
// The EventLog is an eventlog.TimeReader: it reads a history in event-time
// order (timestamp, stream id, sequence) a page at a time, so a fold in
// event time needs memory for one page whatever the history's length.
// The index is written lazily, per aggregate. The first ReadTimePage of an
// aggregate writes its missing index keys (10,000 events a transaction)
// and records in events_by_time_through the sequence they are complete
// through; from then on every transaction that writes its events (Append,
// and DB.WriteDecisions, both through appendInTx) also puts their keys and
// moves that sequence, so the index commits with the events and cannot
// disagree with the log. An aggregate never read in event time costs
// nothing: that is most of them, since the executor loads a history within
// one page with ReadPage and sorts it, and writing a second key per event
// into every commit cost the command path about a sixth of its throughput
// (cmd/bench, 8,832 vs 10,236 req/s in back-to-back runs).
// ReadTimePage seeks in the index to the first key after the one it is
// given (a key finer than a millisecond is first rounded up to the next
// millisecond, as events are kept to the millisecond), walks up to one key
// more than the page (the extra key says more=true), and looks each event
// up in events by its sequence, all in one read transaction. An index key
// whose event is missing or stamped otherwise is reported as ErrCorrupt.
// An indexed aggregate's event costs one more key (its aggregate prefix and
// stream id plus 18 bytes, with an empty value) and one more B+tree put in
// its append;
// BenchmarkReadTimePage compares a page in event time (a seek plus a
// lookup per event) with one in log order (a range scan).
//
// Files written before the index existed carry format 1. Open upgrades
// them before it returns: it walks the events bucket and puts every
// event's index key, 10,000 events per transaction (bounded memory, one
// commit each), then writes format 2 in the last of them. A build that
// stops part-way (a crash) leaves format 1 and is simply done again on
// the next Open (putting a key that exists changes nothing); nothing else
// writes the file while Open runs. Opening a large format-1 file is
// therefore slower once. A build that reads only format 1 refuses a file
// of format 2 (ErrFormat): downgrading would append events the index does
// not hold, so it is not allowed to.
//
// # Outbox
//
// The DB implements eventlog.Outbox: package eventbus marks each batch of
// appends (writer, time bucket, aggregate, first and last sequence) before
// appending it, so that events a crash kept off the bus can be published
// from the log later. Mark does NOT write the file: it encodes the marks
// and buffers them in memory under a mutex, and the DB's next write
// transaction that commits anything — the Append or WriteDecisions the
// marks announce, normally — writes them into the outbox bucket (and
// raises the writer's last in outbox_writers) in the same transaction as
// its events. So the marks cost no fsync of their own, and they are never
// durable later than the appends they describe. A transaction copies the
// buffer and removes what it wrote only once it has committed: a failed
// transaction loses no mark, and a transaction that writes nothing of its
// own (a batch of conflicts) commits nothing and leaves the marks for the
// next. Marks buffered when the DB closes are lost, as are the appends
// they announce, which never ran.
//
// Reads merge: Marks and Writers read the buffer first, then the file
// (buffered values win), so a mark committed and removed from the buffer
// between the two reads is still seen. SetPublished and Forget are write
// transactions of their own (one fsync each, at most once per bucket):
// they write the buffered marks too, then SetPublished moves the watermark
// (never back) and deletes the writer's marks in the buckets it covers, and
// Forget deletes the writer's row and all its marks; both drop the
// writer's matching buffered marks. Lock order: bbolt's writer lock, then
// the buffer's mutex, which is never held across I/O.
//
// BenchmarkMarkAppend measures Mark+Append against Append alone. On a
// 2-core VM (ext4, fsync on) a batch of 16 appends took about 0.58 ms
// alone and 0.69 ms with its marks, a batch of 256 about 4.7 and 5.6 ms
// (medians of 4 runs, noisy): some 18% more per batch, all of it bbolt
// putting and spilling the extra keys (about 2.5 µs per mark, the same
// with NoSync), none of it an fsync.
package bolt
