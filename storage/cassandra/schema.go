package cassandra

import "fmt"

// settingBucketSize is the key under which the settings table records
// Config.BucketSize.
const settingBucketSize = "bucket_size"

// statements holds the CQL of every statement the store runs, with the
// keyspace and table names filled in.
type statements struct {
	keyspace string
	events   string // qualified table names
	byTime   string // events_by_time
	buckets  string
	commands string
	settings string
	outbox   string
	writers  string // outbox_writers

	insertEvent   string
	setHead       string // conditional: IF head = ?
	setHeadIfNull string // conditional: IF head = null
	selectHead    string
	selectEvents  string
	insertBucket  string
	selectBuckets string // newest first

	insertTimeEvent      string
	setIndexedThrough    string
	selectIndexedThrough string
	selectTimePage       string // (event_time, stream_id, sequence) > (?, ?, ?)

	insertCommand string
	claimCommand  string // conditional: IF NOT EXISTS
	selectCommand string
	insertSetting string // conditional: IF NOT EXISTS

	insertMark         string // USING TTL ?
	selectMarks        string
	setWriterLast      string // plain; USING TIMESTAMP from the caller
	setPublished       string // conditional: IF published < ?
	setPublishedIfNull string // conditional: IF published = null
	selectWriters      string
	deleteWriter       string
}

// eventColumns are the columns a read returns, in the order scanEvent reads
// them.
const eventColumns = "sequence, event_time, stream_id, processing_id, processing_id_text, processing_time, " +
	"name, version, characteristics, payload, command_id, event_id"

func newStatements(keyspace, prefix string) statements {
	q := statements{
		keyspace: keyspace,
		events:   keyspace + "." + prefix + "events",
		byTime:   keyspace + "." + prefix + "events_by_time",
		buckets:  keyspace + "." + prefix + "event_buckets",
		commands: keyspace + "." + prefix + "commands",
		settings: keyspace + "." + prefix + "settings",
		outbox:   keyspace + "." + prefix + "outbox",
		writers:  keyspace + "." + prefix + "outbox_writers",
	}
	const pk = "aggregate_type = ? AND aggregate_id = ?"
	q.insertEvent = "INSERT INTO " + q.events + " (aggregate_type, aggregate_id, bucket, " + eventColumns +
		") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	q.setHead = "UPDATE " + q.events + " SET head = ? WHERE " + pk + " AND bucket = ? IF head = ?"
	q.setHeadIfNull = "UPDATE " + q.events + " SET head = ? WHERE " + pk + " AND bucket = ? IF head = null"
	q.selectHead = "SELECT head FROM " + q.events + " WHERE " + pk + " AND bucket = ? LIMIT 1"
	q.selectEvents = "SELECT " + eventColumns + " FROM " + q.events + " WHERE " + pk + " AND bucket = ? AND sequence >= ? LIMIT ?"
	q.insertTimeEvent = "INSERT INTO " + q.byTime + " (aggregate_type, aggregate_id, " + eventColumns +
		") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	q.setIndexedThrough = "UPDATE " + q.byTime + " SET indexed_through = ? WHERE " + pk
	q.selectIndexedThrough = "SELECT indexed_through FROM " + q.byTime + " WHERE " + pk + " LIMIT 1"
	q.selectTimePage = "SELECT indexed_through, " + eventColumns + " FROM " + q.byTime + " WHERE " + pk +
		" AND (event_time, stream_id, sequence) > (?, ?, ?) LIMIT ?"
	q.insertBucket = "INSERT INTO " + q.buckets + " (aggregate_type, aggregate_id, bucket, first_sequence) VALUES (?, ?, ?, ?)"
	q.selectBuckets = "SELECT bucket, first_sequence FROM " + q.buckets + " WHERE " + pk + " ORDER BY bucket DESC"
	q.insertCommand = "INSERT INTO " + q.commands + " (command_id, aggregate_type, aggregate_id, command, outcome, " +
		"first_sequence, last_sequence, code, reason, message, at, args_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
	q.claimCommand = "INSERT INTO " + q.commands + " (command_id, aggregate_type, aggregate_id, command, outcome, " +
		"first_sequence, last_sequence, code, reason, message, at, args_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
	q.selectCommand = "SELECT aggregate_type, aggregate_id, command, outcome, first_sequence, last_sequence, " +
		"code, reason, message, at, args_digest FROM " + q.commands + " WHERE command_id = ?"
	q.insertSetting = "INSERT INTO " + q.settings + " (name, value) VALUES (?, ?) IF NOT EXISTS"
	q.insertMark = "INSERT INTO " + q.outbox + " (writer, bucket, aggregate_type, aggregate_id, first, last) " +
		"VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
	q.selectMarks = "SELECT aggregate_type, aggregate_id, first, last FROM " + q.outbox + " WHERE writer = ? AND bucket = ?"
	q.setWriterLast = "UPDATE " + q.writers + " SET last = ? WHERE writer = ?"
	q.setPublished = "UPDATE " + q.writers + " SET published = ? WHERE writer = ? IF published < ?"
	q.setPublishedIfNull = "UPDATE " + q.writers + " SET published = ? WHERE writer = ? IF published = null"
	q.selectWriters = "SELECT writer, published, last FROM " + q.writers
	q.deleteWriter = "DELETE FROM " + q.writers + " WHERE writer = ?"
	return q
}

// schema returns the statements that create the keyspace and the tables
// when they are missing.
func (q statements) schema(replication string) []string {
	return []string{
		fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", q.keyspace, replication),
		// One partition per (aggregate, bucket). head is the fence: the last
		// sequence written to the partition, set only by conditional batches
		// together with the rows they insert.
		`CREATE TABLE IF NOT EXISTS ` + q.events + ` (
			aggregate_type text,
			aggregate_id text,
			bucket int,
			sequence bigint,
			head bigint STATIC,
			event_time timestamp,
			stream_id text,
			` + eventValueColumnsDDL + `
			PRIMARY KEY ((aggregate_type, aggregate_id, bucket), sequence)
		) WITH CLUSTERING ORDER BY (sequence ASC)`,
		// Each aggregate's history in event-time order (eventtime.go): one
		// partition per aggregate, clustered by the model.TimeKey. Only
		// plain writes of values copied from events: the rows of an append
		// after its conditional batch applied, or the rows ReadTimePage
		// copies from events when indexed_through is behind the head.
		// indexed_through says every sequence up to it has its row.
		`CREATE TABLE IF NOT EXISTS ` + q.byTime + ` (
			aggregate_type text,
			aggregate_id text,
			event_time timestamp,
			stream_id text,
			sequence bigint,
			indexed_through bigint STATIC,
			` + eventValueColumnsDDL + `
			PRIMARY KEY ((aggregate_type, aggregate_id), event_time, stream_id, sequence)
		) WITH CLUSTERING ORDER BY (event_time ASC, stream_id ASC, sequence ASC)`,
		// The bucket index of each aggregate: plain writes of deterministic
		// values only.
		`CREATE TABLE IF NOT EXISTS ` + q.buckets + ` (
			aggregate_type text,
			aggregate_id text,
			bucket int,
			first_sequence bigint,
			PRIMARY KEY ((aggregate_type, aggregate_id), bucket)
		) WITH CLUSTERING ORDER BY (bucket ASC)`,
		`CREATE TABLE IF NOT EXISTS ` + q.commands + ` (
			command_id text PRIMARY KEY,
			aggregate_type text,
			aggregate_id text,
			command text,
			outcome text,
			first_sequence bigint,
			last_sequence bigint,
			code text,
			reason text,
			message text,
			at timestamp,
			args_digest text
		)`,
		`CREATE TABLE IF NOT EXISTS ` + q.settings + ` (
			name text PRIMARY KEY,
			value text
		)`,
		// The outbox: one partition per (writer, time bucket), rows only
		// ever inserted with a TTL, never deleted, so time-window
		// compaction drops whole expired SSTables and reads never meet
		// tombstones.
		`CREATE TABLE IF NOT EXISTS ` + q.outbox + ` (
			writer text,
			bucket bigint,
			aggregate_type text,
			aggregate_id text,
			first bigint,
			last bigint,
			PRIMARY KEY ((writer, bucket), aggregate_type, aggregate_id, first)
		) WITH CLUSTERING ORDER BY (aggregate_type ASC, aggregate_id ASC, first ASC)
		AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': '24'}`,
		// Each writer's position: last by plain writes (in bucket order
		// per process), published by conditional writes only.
		`CREATE TABLE IF NOT EXISTS ` + q.writers + ` (
			writer text PRIMARY KEY,
			published bigint,
			last bigint
		)`,
	}
}

// addedColumns are columns added to tables after their first release: a
// keyspace created before gets them with ALTER TABLE when the store creates
// its schema (CREATE TABLE IF NOT EXISTS leaves an existing table as it is).
func (q statements) addedColumns() []struct{ table, column, typ string } {
	return []struct{ table, column, typ string }{
		{q.commands, "args_digest", "text"},
	}
}

// eventValueColumnsDDL declares the columns of an event beyond its
// aggregate, sequence, event time and stream: the events table and the
// event-time table (a copy of the same events in another order) both have
// them, and must keep having the same ones.
const eventValueColumnsDDL = `processing_id timeuuid,
			processing_id_text text,
			processing_time timestamp,
			name text,
			version int,
			characteristics tinyint,
			payload blob,
			command_id text,
			event_id text,`
