package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/storage/cassandra"
)

// benchCassandra names a fresh keyspace for this run and returns the
// store configuration on it (logging nothing) and the function that drops
// the keyspace at the end.
func benchCassandra(p params, name string) (cassandra.Config, func()) {
	keyspace := fmt.Sprintf("%s_%d", name, time.Now().UnixNano())
	fmt.Printf("store: Cassandra at %s, keyspace %s (dropped when done)\n", p.cassandra, keyspace)
	ccfg := cassandra.DefaultConfig()
	ccfg.Hosts = []string{p.cassandra}
	ccfg.Keyspace = keyspace
	ccfg.Logger = slog.New(slog.DiscardHandler)
	return ccfg, func() { dropKeyspace(p.cassandra, keyspace) }
}

// benchRawCassandra measures the storage ceiling: each operation is the
// conditional batch the store itself sends for a one-event append (move the
// partition's head fence, insert the event row), issued directly with gocql
// at concurrency C over K aggregates, on tables the store created.
func benchRawCassandra(p params, ccfg cassandra.Config) (*result, error) {
	ctx := context.Background()
	rawCfg := ccfg
	rawCfg.TablePrefix = "raw_"
	st, err := cassandra.Open(ctx, rawCfg) // creates the keyspace and tables
	if err != nil {
		return nil, err
	}
	st.Close()

	cluster := gocql.NewCluster(p.cassandra)
	cluster.ProtoVersion = 4
	cluster.Keyspace = ccfg.Keyspace
	cluster.Consistency = gocql.LocalQuorum
	cluster.SerialConsistency = gocql.LocalSerial
	cluster.Timeout = 10 * time.Second
	cluster.NumConns = 2
	session, err := cluster.CreateSession()
	if err != nil {
		return nil, err
	}
	defer session.Close()

	const (
		setHead     = "UPDATE raw_events SET head = ? WHERE aggregate_type = ? AND aggregate_id = ? AND bucket = 0 IF head = ?"
		setHeadNull = "UPDATE raw_events SET head = ? WHERE aggregate_type = ? AND aggregate_id = ? AND bucket = 0 IF head = null"
		insert      = "INSERT INTO raw_events (aggregate_type, aggregate_id, bucket, sequence, event_time, stream_id, processing_id, processing_id_text, processing_time, name, version, characteristics, payload, command_id, event_id) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	)
	heads := make([]int64, p.k)
	next := make([]int, p.c)
	payload := []byte("{}")
	res := drive(p, func(w int, _ context.Context) error {
		i := w + next[w]*p.c
		if i >= p.k {
			next[w], i = 0, w
		}
		next[w]++
		id := fmt.Sprintf("raw-%09d", i)
		seq := heads[i] + 1
		now := time.Now().UTC().Truncate(time.Millisecond)
		pid := gocql.UUIDFromTime(now)
		b := session.NewBatch(gocql.LoggedBatch)
		if heads[i] == 0 {
			b.Query(setHeadNull, seq, "lightbulb", id)
		} else {
			b.Query(setHead, seq, "lightbulb", id, heads[i])
		}
		b.Query(insert, "lightbulb", id, seq, now, "default", pid, pid.String(), now, "switchedOn", 0, int8(0), payload, fmt.Sprintf("cmd-%d-%d", i, seq), fmt.Sprintf("ev-%d-%d", i, seq))
		applied, iter, err := session.MapExecuteBatchCAS(b, map[string]any{})
		if iter != nil {
			_ = iter.Close()
		}
		if err != nil {
			return err
		}
		if !applied {
			return fmt.Errorf("raw append to %s at %d not applied", id, seq)
		}
		heads[i] = seq
		return nil
	})
	return res, nil
}

// dropKeyspace removes the benchmark's keyspace.
func dropKeyspace(host, keyspace string) {
	cluster := gocql.NewCluster(host)
	cluster.ProtoVersion = 4
	cluster.Timeout = 30 * time.Second
	session, err := cluster.CreateSession()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: dropping keyspace:", err)
		return
	}
	defer session.Close()
	if err := session.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: dropping keyspace:", err)
	}
}
