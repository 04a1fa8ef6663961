package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/node"
)

// run's argument and environment handling: --help, bad flags, bad
// environment values and bad choices end with a usage error naming the
// problem, before anything is started.
func TestRunRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		mention string
	}{
		{name: "help", args: []string{"--help"}, code: 0, mention: "CONCURSUS_NATS_URL"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, code: 2, mention: "no-such-flag"},
		{name: "stray argument", args: []string{"extra"}, code: 2, mention: "unexpected arguments"},
		{name: "bad port flag", args: []string{"--nats-port", "many"}, code: 2, mention: "not a whole number"},
		{name: "bad env", env: map[string]string{"CONCURSUS_NATS_PORT": "many"}, code: 2, mention: "$CONCURSUS_NATS_PORT"},
		{name: "bad duration", args: []string{"--request-timeout", "soon"}, code: 2, mention: "not a duration"},
		{name: "bad size", args: []string{"--max-payload", "huge"}, code: 2, mention: "not a size"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, code: 2, mention: "log level"},
		{name: "bad log format", args: []string{"--log-format", "xml"}, code: 2, mention: "log format"},
		{name: "bad store", args: []string{"--store", "floppy"}, code: 2, mention: "want embedded or cassandra"},
		{name: "bad cassandra consistency", args: []string{"--store", "cassandra", "--cassandra-consistency", "MOSTLY"}, code: 2, mention: "MOSTLY"},
		{name: "bad bool", args: []string{"--cassandra-tls=perhaps"}, code: 2, mention: "perhaps"},
		{name: "help mentions the subcommand", args: []string{"--help"}, code: 0, mention: "node cluster [flags]"},
		{name: "help mentions the cluster flags", args: []string{"--help"}, code: 0, mention: "CONCURSUS_GOSSIP_KEY"},
		{name: "subcommand after flags", args: []string{"--prefix", "x", "cluster"}, code: 2, mention: "comes first"},
		{name: "cluster on the embedded store", args: []string{"--cluster"}, code: 2, mention: "cluster mode needs --store cassandra"},
		{name: "join implies cluster", args: []string{"--join", "127.0.0.1:7946"}, code: 2, mention: "cluster mode needs --store cassandra"},
		{name: "cluster from env", env: map[string]string{"CONCURSUS_CLUSTER": "true"}, code: 2, mention: "cluster mode needs --store cassandra"},
		{name: "join from env", env: map[string]string{"CONCURSUS_JOIN": "127.0.0.1:7946"}, code: 2, mention: "cluster mode needs --store cassandra"},
		{name: "bad cluster env", env: map[string]string{"CONCURSUS_CLUSTER": "maybe"}, code: 2, mention: "$CONCURSUS_CLUSTER"},
		{name: "join refused by --cluster=false", args: []string{"--cluster=false", "--join", "127.0.0.1:7946"}, code: 2, mention: "--cluster=false refuses it"},
		{name: "cluster flag outside cluster mode", args: []string{"--gossip-port", "7947"}, code: 2, mention: "--gossip-port only apply to cluster mode"},
		{name: "cluster env outside cluster mode", env: map[string]string{"CONCURSUS_PARTITIONS": "7"}, code: 2, mention: "--partitions only apply to cluster mode"},
		{name: "gossip key not base64", args: []string{"--store", "cassandra", "--cluster", "--gossip-key", "not base64!"}, code: 2, mention: "--gossip-key"},
		{name: "gossip key too short", args: []string{"--store", "cassandra", "--cluster", "--gossip-key", "c2hvcnQ="}, code: 2, mention: "5 bytes, must be 16, 24 or 32"},
		{name: "bad profile", args: []string{"--store", "cassandra", "--cluster", "--gossip-profile", "moon"}, code: 2, mention: `--gossip-profile "moon": want lan, wan or local`},
		{name: "no partitions", args: []string{"--store", "cassandra", "--cluster", "--partitions", "0"}, code: 2, mention: "--partitions 0 must be between 1 and 65536"},
		{name: "too many partitions", args: []string{"--store", "cassandra", "--cluster", "--partitions", "65537"}, code: 2, mention: "--partitions 65537"},
		{name: "no handover grace", args: []string{"--store", "cassandra", "--cluster", "--handover-grace", "0s"}, code: 2, mention: "--handover-grace 0s must be positive"},
		{name: "raft addr", args: []string{"--store", "cassandra", "--cluster", "--raft-addr", "nohost"}, code: 2, mention: "--raft-addr \"nohost\" is not host:port"},
		{name: "raft voters", args: []string{"--store", "cassandra", "--cluster", "--raft-voters", "7"}, code: 2, mention: "--raft-voters 7 must be between 1 and 5"},
		{name: "idempotency window", args: []string{"--store", "cassandra", "--cluster", "--idempotency-window", "0s"}, code: 2, mention: "--idempotency-window 0s must be positive"},
		{name: "raft flag alone", args: []string{"--raft-voters", "3"}, code: 2, mention: "--raft-voters only apply to cluster mode"},
		{name: "stream flag alone", args: []string{"--stream-max-age", "1h"}, code: 2, mention: "--stream-max-age only applies with --stream"},
		{name: "stream replicas", args: []string{"--stream", "--stream-replicas", "9"}, code: 2, mention: "stream replicas 9 must be between 1 and 5"},
		{name: "gossip addr not an IP", args: []string{"--store", "cassandra", "--cluster", "--gossip-addr", "localhost"}, code: 2, mention: `--gossip-addr "localhost" is not an IP address`},
		{name: "gossip port out of range", args: []string{"--store", "cassandra", "--cluster", "--gossip-port", "70000"}, code: 2, mention: "--gossip-port 70000"},
		{name: "seed without port", args: []string{"--store", "cassandra", "--join", "127.0.0.1"}, code: 2, mention: `--join item [0] "127.0.0.1" must be host:port`},
		{name: "advertise port alone", args: []string{"--store", "cassandra", "--cluster", "--advertise-port", "7950"}, code: 2, mention: "--advertise-port 7950 needs an --advertise-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			if code := run(tt.args, &out, &out); code != tt.code {
				t.Fatalf("run(%q) = %d, want %d; output:\n%s", tt.args, code, tt.code, out.String())
			}
			if !strings.Contains(out.String(), tt.mention) {
				t.Errorf("output does not mention %q:\n%s", tt.mention, out.String())
			}
		})
	}
}

func TestSizeValue(t *testing.T) {
	for in, want := range map[string]int{"1024": 1024, "1KiB": 1024, "2MiB": 2 << 20, " 3 MiB": 3 << 20} {
		var v sizeValue
		if err := v.Set(in); err != nil || int(v) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, v, err, want)
		}
	}
	var v sizeValue
	for _, in := range []string{"", "-1", "1GB", "MiB"} {
		if err := v.Set(in); err == nil {
			t.Errorf("Set(%q) accepted", in)
		}
	}
}

// The cluster settings reach node.Config: --join implies cluster mode, the
// node id is left to node.New (a fresh id per process) unless given, and a
// node without --nats-url is warned that its embedded server is a single
// point of failure. Nothing is started.
func TestConfigureCluster(t *testing.T) {
	key := "q83vEjRWeJq83vEjRWeJqw==" // 16 bytes
	var out bytes.Buffer
	inv, code := configure([]string{"--store", "cassandra", "--join", "127.0.0.1:7946, 127.0.0.1:7947",
		"--gossip-addr", "0.0.0.0", "--gossip-port", "7950", "--advertise-addr", "10.0.0.5", "--advertise-port", "17950",
		"--gossip-key", key, "--gossip-profile", "local", "--partitions", "7", "--handover-grace", "1s"}, &out)
	if inv == nil {
		t.Fatalf("configure = nil, %d; output:\n%s", code, out.String())
	}
	cc := inv.cfg.Cluster
	if cc == nil {
		t.Fatal("--join did not turn cluster mode on")
	}
	g := cc.Gossip
	if strings.Join(g.Join, " ") != "127.0.0.1:7946 127.0.0.1:7947" || g.BindAddr != "0.0.0.0" || g.BindPort != 7950 ||
		g.AdvertiseAddr != "10.0.0.5" || g.AdvertisePort != 17950 || len(g.SecretKey) != 16 || g.Profile != cluster.ProfileLocal {
		t.Errorf("gossip config = %+v", g)
	}
	if cc.Ring.PartitionCount != 7 || cc.HandoverGrace != time.Second {
		t.Errorf("partitions %d, handover grace %v", cc.Ring.PartitionCount, cc.HandoverGrace)
	}
	if ic := cc.Idempotency; ic.Disabled || ic.Voters != 3 || ic.Window != 10*time.Minute || ic.FailureGrace != 30*time.Second || ic.BindAddr != "" {
		t.Errorf("idempotency defaults = %+v", ic)
	}
	t.Run("idempotency", func(t *testing.T) {
		var out bytes.Buffer
		inv, _ := configure([]string{"--store", "cassandra", "--cluster", "--nats-url", "nats://127.0.0.1:4222",
			"--raft-addr", "127.0.0.1:7960", "--raft-advertise", "10.0.0.5:7960", "--idempotency-window", "2m",
			"--raft-voters", "5", "--raft-failure-grace", "1m", "--no-idempotency"}, &out)
		if inv == nil || inv.cfg.Cluster == nil {
			t.Fatalf("configure failed:\n%s", out.String())
		}
		want := node.IdempotencyConfig{Disabled: true, BindAddr: "127.0.0.1:7960", AdvertiseAddr: "10.0.0.5:7960",
			Window: 2 * time.Minute, Voters: 5, FailureGrace: time.Minute}
		if got := inv.cfg.Cluster.Idempotency; got != want {
			t.Errorf("idempotency config = %+v, want %+v", got, want)
		}
	})
	if inv.cfg.NodeID != "" {
		t.Errorf("NodeID = %q; want empty, for node.New to pick a fresh per-process id", inv.cfg.NodeID)
	}
	if len(inv.opts) != 1 {
		t.Errorf("%d node options; want the Cassandra store opener", len(inv.opts))
	}
	if !strings.Contains(out.String(), "single point of failure") {
		t.Errorf("no warning about the embedded NATS server:\n%s", out.String())
	}

	t.Run("defaults", func(t *testing.T) {
		var out bytes.Buffer
		inv, _ := configure([]string{"--store", "cassandra", "--cluster", "--nats-url", "nats://127.0.0.1:4222"}, &out)
		if inv == nil || inv.cfg.Cluster == nil {
			t.Fatalf("configure failed:\n%s", out.String())
		}
		g := inv.cfg.Cluster.Gossip
		if g.BindAddr != "127.0.0.1" || g.BindPort != cluster.DefaultPort || g.Profile != cluster.ProfileLAN || len(g.Join) != 0 || g.SecretKey != nil {
			t.Errorf("gossip config = %+v", g)
		}
		if inv.cfg.Cluster.Ring.PartitionCount != 1021 || inv.cfg.Cluster.HandoverGrace != 500*time.Millisecond {
			t.Errorf("cluster config = %+v", inv.cfg.Cluster)
		}
		if strings.Contains(out.String(), "single point of failure") {
			t.Errorf("warned about an embedded NATS server with --nats-url:\n%s", out.String())
		}
	})
	t.Run("node id given", func(t *testing.T) {
		t.Setenv("CONCURSUS_NODE_ID", "n-env")
		t.Setenv("CONCURSUS_CLUSTER", "1")
		t.Setenv("CONCURSUS_STORE", "cassandra")
		var out bytes.Buffer
		if inv, _ := configure(nil, &out); inv == nil || inv.cfg.Cluster == nil || inv.cfg.NodeID != "n-env" {
			t.Fatalf("configure = %+v:\n%s", inv, out.String())
		}
		if inv, _ := configure([]string{"--node-id", "n-flag"}, &out); inv == nil || inv.cfg.NodeID != "n-flag" {
			t.Fatalf("configure = %+v:\n%s", inv, out.String())
		}
	})
	t.Run("empty cluster variables set nothing", func(t *testing.T) {
		t.Setenv("CONCURSUS_GOSSIP_KEY", "")
		t.Setenv("CONCURSUS_JOIN", "")
		var out bytes.Buffer
		if inv, code := configure(nil, &out); inv == nil || inv.cfg.Cluster != nil {
			t.Fatalf("configure = %+v, %d:\n%s", inv, code, out.String())
		}
	})
	t.Run("standalone keeps the host name", func(t *testing.T) {
		host, err := os.Hostname()
		if err != nil || host == "" {
			t.Skip("no host name")
		}
		var out bytes.Buffer
		inv, _ := configure(nil, &out)
		if inv == nil || inv.cfg.Cluster != nil || inv.cfg.NodeID != host {
			t.Fatalf("configure = %+v; want no cluster and node id %q:\n%s", inv, host, out.String())
		}
	})
}

func TestConfigureStream(t *testing.T) {
	var out bytes.Buffer
	inv, code := configure([]string{"--stream", "--stream-max-age", "72h", "--stream-max-bytes", "2GiB", "--stream-name", "BULBS"}, &out)
	if inv == nil {
		t.Fatalf("configure = nil, %d:\n%s", code, out.String())
	}
	sc := inv.cfg.Stream
	if sc == nil || sc.Name != "BULBS" || sc.MaxAge != 72*time.Hour || sc.MaxBytes != 2<<30 {
		t.Errorf("stream config = %+v", sc)
	}
	if inv, _ := configure(nil, &out); inv == nil || inv.cfg.Stream != nil {
		t.Error("a stream without --stream")
	}
}
