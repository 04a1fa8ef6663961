package cassandra

import (
	"errors"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/commandlog/commandlogtest"
)

// ttlOf returns the remaining TTL of a stored record's columns, 0 if none.
func ttlOf(t *testing.T, s *Store, id string) int {
	t.Helper()
	var ttl *int
	if err := s.session.Query("SELECT TTL(command) FROM "+s.q.commands+" WHERE command_id = ?", id).Scan(&ttl); err != nil {
		t.Fatalf("TTL of %q: %v", id, err)
	}
	if ttl == nil {
		return 0
	}
	return *ttl
}

// TestCommandTTL checks that records expire after Config.CommandTTL, and
// that the default TTL is applied and 0 keeps records.
func TestCommandTTL(t *testing.T) {
	ks := newKeyspace(t)
	short := ks.open(t, func(c *Config) { c.CommandTTL = time.Second }).CommandLog()
	r := commandlogtest.NewRecord("short-lived", commandlogtest.Base)
	start := time.Now()
	if err := short.Put(t.Context(), []commandlog.Record{r}); err != nil {
		t.Fatal(err)
	}
	if _, err := short.Get(t.Context(), r.CommandID); err != nil && time.Since(start) < 900*time.Millisecond {
		t.Fatalf("Get right after Put: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := short.Get(t.Context(), r.CommandID)
		if errors.Is(err, commandlog.ErrNotFound) {
			t.Logf("expired after %s", time.Since(start))
			break
		}
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("record with a TTL of 1s still there after %s", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}

	s := ks.open(t, nil)
	if err := s.CommandLog().Put(t.Context(), []commandlog.Record{commandlogtest.NewRecord("default", commandlogtest.Base)}); err != nil {
		t.Fatal(err)
	}
	if ttl, max := ttlOf(t, s, "default"), int(DefaultCommandTTL/time.Second); ttl > max || ttl < max-60 {
		t.Errorf("TTL with the default configuration = %ds, want about %ds", ttl, max)
	}
	forever := ks.open(t, func(c *Config) { c.CommandTTL = 0 })
	if err := forever.CommandLog().Put(t.Context(), []commandlog.Record{commandlogtest.NewRecord("forever", commandlogtest.Base)}); err != nil {
		t.Fatal(err)
	}
	if ttl := ttlOf(t, forever, "forever"); ttl != 0 {
		t.Errorf("TTL with CommandTTL 0 = %ds, want none", ttl)
	}
	// A replacement restarts the TTL (and keeps it).
	if err := s.CommandLog().Put(t.Context(), []commandlog.Record{commandlogtest.NewRecord("default", commandlogtest.Base)}); err != nil {
		t.Fatal(err)
	}
	if ttl := ttlOf(t, s, "default"); ttl < int(DefaultCommandTTL/time.Second)-60 {
		t.Errorf("TTL after a replacement = %ds", ttl)
	}
}

// TestCommandPutInvalid checks the records Put refuses before writing.
func TestCommandPutInvalid(t *testing.T) {
	ks := newKeyspace(t)
	l := ks.open(t, nil).CommandLog()
	ok := commandlogtest.NewRecord("fine", commandlogtest.Base)
	if err := l.Put(t.Context(), []commandlog.Record{ok, commandlogtest.NewRecord("", commandlogtest.Base)}); err == nil {
		t.Errorf("Put of a record without a command id succeeded")
	}
	if _, err := l.Get(t.Context(), ok.CommandID); !errors.Is(err, commandlog.ErrNotFound) {
		t.Errorf("a batch with an invalid record wrote its valid one: Get = %v", err)
	}
}

// A keyspace whose commands table predates the args_digest column gets it
// when a store opens it, and keeps its records.
func TestCommandsTableGainsArgsDigest(t *testing.T) {
	ks := newKeyspace(t)
	first := ks.open(t, nil) // creates the keyspace and tables
	cfg := ks.config()
	q := newStatements(cfg.Keyspace, cfg.TablePrefix)
	if err := first.session.Query(`CREATE TABLE ` + q.commands + ` (
		command_id text PRIMARY KEY, aggregate_type text, aggregate_id text, command text, outcome text,
		first_sequence bigint, last_sequence bigint, code text, reason text, message text, at timestamp)`).Exec(); err != nil {
		t.Fatalf("create an old commands table: %v", err)
	}
	if err := first.session.Query(`INSERT INTO `+q.commands+` (command_id, aggregate_type, aggregate_id, command, outcome, at) VALUES (?, ?, ?, ?, ?, ?)`,
		"old-1", "lightbulb", "b1", "switchOn", "accepted", time.Now()).Exec(); err != nil {
		t.Fatal(err)
	}
	s := ks.openConfig(t, cfg).CommandLog()
	got, err := s.Get(t.Context(), "old-1")
	if err != nil || got.ArgsDigest != "" || got.Command != "switchOn" {
		t.Fatalf("old record: %+v, %v", got, err)
	}
	r := commandlogtest.NewRecord("new-1", commandlogtest.Base)
	r.ArgsDigest = commandlog.ArgsDigest([]byte(`{"a":1}`))
	if errs := s.Insert(t.Context(), []commandlog.Record{r}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if got, err := s.Get(t.Context(), "new-1"); err != nil || got.ArgsDigest != r.ArgsDigest {
		t.Fatalf("new record: %+v, %v; want digest %s", got, err, r.ArgsDigest)
	}
}
