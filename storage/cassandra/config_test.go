package cassandra

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/model"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config (all defaults) Validate() = %v", err)
	}
	ok := []func(*Config){
		func(c *Config) { c.Hosts = []string{"cassandra-1", "10.0.0.2:9142", "[::1]:9042", "::1"} },
		func(c *Config) { c.Keyspace = "Events_2025" },
		func(c *Config) { c.TablePrefix = "app1_" },
		func(c *Config) { c.Replication = "{'class': 'NetworkTopologyStrategy', 'dc1': 3}" },
		func(c *Config) { c.ReplicationClass, c.ReplicationFactor = "NetworkTopologyStrategy", 3 },
		func(c *Config) { c.Consistency, c.SerialConsistency = "quorum", "serial" },
		func(c *Config) { c.CommandTTL = 0 },
		func(c *Config) { c.CommandTTL = MaxCommandTTL },
		func(c *Config) { c.OutboxTTL = 0 }, // the default
		func(c *Config) { c.OutboxTTL = time.Second },
		func(c *Config) { c.TablePrefix = strings.Repeat("p", 34) },
		func(c *Config) { c.Username, c.Password = "app", "secret" },
		func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: "c.pem", KeyFile: "k.pem"} },
		func(c *Config) { c.CacheSize = -1 },
		func(c *Config) { c.BucketSize = 1 },
	}
	for i, tune := range ok {
		c := DefaultConfig()
		tune(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("valid config %d: %v", i, err)
		}
	}
	bad := []struct {
		tune func(*Config)
		want string // in the message: the field and its value
	}{
		{func(c *Config) { c.Hosts = []string{"ok", ""} }, `Hosts[1] is ""`},
		{func(c *Config) { c.Hosts = []string{"h:0"} }, `Hosts[0] is "h:0"`},
		{func(c *Config) { c.Hosts = []string{"h:x"} }, `"h:x"`},
		{func(c *Config) { c.Hosts = []string{":9042"} }, `":9042"`},
		{func(c *Config) { c.Hosts = []string{" h"} }, `" h"`},
		{func(c *Config) { c.Keyspace = "1abc" }, `Keyspace is "1abc"`},
		{func(c *Config) { c.Keyspace = "a-b" }, `Keyspace is "a-b"`},
		{func(c *Config) { c.Keyspace = strings.Repeat("k", 49) }, "Keyspace"},
		{func(c *Config) { c.TablePrefix = "x;" }, `TablePrefix is "x;"`},
		{func(c *Config) { c.TablePrefix = "_x" }, `TablePrefix is "_x"`},
		{func(c *Config) { c.TablePrefix = strings.Repeat("p", 40) }, "TablePrefix"},
		{func(c *Config) { c.ReplicationFactor = -1 }, "ReplicationFactor is -1"},
		{func(c *Config) { c.ReplicationClass = "Simple Strategy" }, `ReplicationClass is "Simple Strategy"`},
		{func(c *Config) { c.Replication = "3" }, `Replication is "3"`},
		{func(c *Config) { c.Replication = "{'class': 'X'}; DROP KEYSPACE x" }, "Replication is"},
		{func(c *Config) { c.Consistency = "MOST" }, `Consistency is "MOST"`},
		{func(c *Config) { c.Consistency = "ANY" }, `Consistency is "ANY"`},
		{func(c *Config) { c.SerialConsistency = "QUORUM" }, `SerialConsistency is "QUORUM"`},
		{func(c *Config) { c.Password = "x" }, "Password"},
		{func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: "c.pem"} }, `CertFile is "c.pem"`},
		{func(c *Config) { c.TLS = TLSConfig{CAFile: "ca.pem"} }, "TLS.Enabled"},
		{func(c *Config) { c.ConnectTimeout = -time.Second }, "ConnectTimeout is -1s"},
		{func(c *Config) { c.Timeout = -time.Second }, "Timeout is -1s"},
		{func(c *Config) { c.ProtoVersion = 5 }, "ProtoVersion is 5"},
		{func(c *Config) { c.ProtoVersion = 3 }, "ProtoVersion is 3"},
		{func(c *Config) { c.NumConns = -2 }, "NumConns is -2"},
		{func(c *Config) { c.BucketSize = -5 }, "BucketSize is -5"},
		{func(c *Config) { c.CommandTTL = -time.Second }, "CommandTTL is -1s"},
		{func(c *Config) { c.CommandTTL = 1500 * time.Millisecond }, "CommandTTL is 1.5s"},
		{func(c *Config) { c.CommandTTL = MaxCommandTTL + time.Second }, "CommandTTL is"},
		{func(c *Config) { c.OutboxTTL = -time.Second }, "OutboxTTL is -1s"},
		{func(c *Config) { c.OutboxTTL = 500 * time.Millisecond }, "OutboxTTL is 500ms"},
		{func(c *Config) { c.OutboxTTL = MaxCommandTTL + time.Second }, "OutboxTTL is"},
		{func(c *Config) { c.TablePrefix = strings.Repeat("p", 35) }, "TablePrefix"},
		{func(c *Config) { c.AppendConcurrency = -1 }, "AppendConcurrency is -1"},
	}
	for _, b := range bad {
		c := DefaultConfig()
		b.tune(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("config expecting %q: Validate() = nil", b.want)
			continue
		}
		if !strings.Contains(err.Error(), b.want) || !strings.HasPrefix(err.Error(), "cassandra: Config.") {
			t.Errorf("Validate() = %q, want it to name %q", err, b.want)
		}
		if _, err := Open(t.Context(), c); err == nil {
			t.Errorf("Open accepted a config Validate refuses (%q)", b.want)
		}
	}
}

// TestOpenUnreachable checks that Open against a closed port fails fast
// with ErrUnreachable. It needs no Cassandra.
func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.Hosts = []string{addr}
	cfg.ConnectTimeout = time.Second
	cfg.Logger = discardLogger()
	start := time.Now()
	s, err := Open(t.Context(), cfg)
	if err == nil {
		s.Close()
		t.Fatalf("Open(%s) succeeded against a closed port", addr)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Open(%s) = %v, want ErrUnreachable", addr, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open(%s) took %s to fail", addr, d)
	}
	t.Logf("%v after %s", err, time.Since(start))

	// A context that ends first wins.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Open(ctx, cfg); !errors.Is(err, context.Canceled) && !errors.Is(err, ErrUnreachable) {
		t.Errorf("Open with a canceled context = %v", err)
	}
}

// TestPositionCache checks the cache's bound and that it only moves forward.
func TestPositionCache(t *testing.T) {
	c := newPositionCache(3)
	ref := func(i int) model.Ref { return model.Ref{Type: "t", ID: string(rune('a' + i))} }
	for i := range 4 {
		c.advance(ref(i), position{bucket: 0, first: 1, head: int64(i + 1)})
	}
	if c.len() != 3 {
		t.Fatalf("cache holds %d entries, bound 3", c.len())
	}
	if _, ok := c.get(ref(0)); ok {
		t.Errorf("the least recently used entry was kept")
	}
	c.get(ref(1)) // now most recent
	c.advance(ref(9), position{head: 1})
	if _, ok := c.get(ref(1)); !ok {
		t.Errorf("a recently used entry was evicted")
	}
	c.advance(ref(1), position{bucket: 3, first: 40, head: 42})
	c.advance(ref(1), position{bucket: 2, first: 20, head: 30}) // older: ignored
	if p, _ := c.get(ref(1)); p != (position{bucket: 3, first: 40, head: 42}) {
		t.Errorf("cache went back to %+v", p)
	}
	c.advance(ref(5), position{head: 0}) // nothing known: not cached
	if _, ok := c.get(ref(5)); ok {
		t.Errorf("an empty position was cached")
	}
	c.drop(ref(1))
	if _, ok := c.get(ref(1)); ok {
		t.Errorf("a dropped entry is still there")
	}
	off := newPositionCache(-1)
	off.advance(ref(1), position{head: 5})
	if _, ok := off.get(ref(1)); ok {
		t.Errorf("a disabled cache cached")
	}
}
