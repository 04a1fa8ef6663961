package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/cassandra"
	"github.com/concursus-go/concursus/storage/memory"
)

// benchClusters measures the command path on a 1-node cluster and on a
// p.nodes-node cluster, one after the other, at the same concurrency, all
// nodes in this process on one NATS server and one shared store. With more
// than one node most requests reach a node that does not own their
// aggregate and are forwarded once, so the ratio is the price of
// forwarding on CPUs the nodes share. With p.filter it compares the
// p.nodes-node cluster without and with the replicated idempotency filter
// instead.
func benchClusters(p params, url string, conns []*nats.Conn) error {
	var events eventlog.Log
	var commands commandlog.Log
	switch p.store {
	case "memory":
		events, commands = memory.NewEventLog(), memory.NewCommandLog()
		fmt.Println("store: shared in-memory logs (isolates routing and forwarding from storage)")
	case "cassandra":
		ccfg, drop := benchCassandra(p, "bench_cluster")
		defer drop()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		st, err := cassandra.Open(ctx, ccfg)
		cancel()
		if err != nil {
			return err
		}
		defer st.Close()
		events, commands = st.EventLog(), st.CommandLog()
	default:
		return fmt.Errorf("-store %q with -nodes: want memory or cassandra (a cluster needs a shared store)", p.store)
	}
	type scenario struct {
		name     string
		size     int
		noFilter bool
	}
	runs := []scenario{{"1-node", 1, p.noFilter}, {fmt.Sprintf("%d-node", p.nodes), p.nodes, p.noFilter}}
	if p.filter {
		runs = []scenario{{"without-filter", p.nodes, true}, {"with-filter", p.nodes, false}}
	}
	var results []*result
	for i, sc := range runs {
		name, size := sc.name, sc.size
		fmt.Printf("\n%s (%d-node cluster): starting\n", name, size)
		if p.store == "memory" && i > 0 {
			// A fresh store per scenario: the in-memory log keeps every
			// event on the heap, and a heap grown by the first scenario
			// would slow the second one's garbage collection.
			events, commands = memory.NewEventLog(), memory.NewCommandLog()
			runtime.GC()
		}
		nodes, stop, err := startCluster(url, size, events, commands, p, sc.noFilter)
		if err != nil {
			return err
		}
		res, err := benchWorkload(p, conns, fmt.Sprintf("r%d-", i), nodes)
		var forwarded, local, direct uint64
		for _, n := range nodes {
			r := n.ClusterInfo().Routing
			forwarded += r.Forwarded
			local += r.Local
			direct += r.Direct
		}
		stop()
		if err != nil {
			return err
		}
		res.note += fmt.Sprintf("  (forwarded %.0f%% of requests)", 100*float64(forwarded)/float64(max(local+forwarded, 1)))
		results = append(results, res)
	}
	fmt.Println()
	results[0].print(runs[0].name)
	results[1].print(runs[1].name)
	fmt.Printf("\n%s/%s ratio: %.2f\n", runs[1].name, runs[0].name, results[1].throughput()/results[0].throughput())
	return nil
}

// startCluster starts size clustered nodes on the shared logs and waits
// until they agree on the ring.
func startCluster(url string, size int, events eventlog.Log, commands commandlog.Log, p params, noFilter bool) ([]*node.Node, func(), error) {
	var nodes []*node.Node
	stop := func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			_ = nodes[i].Shutdown(context.Background())
		}
	}
	for i := range size {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].GossipAddr()}
		}
		reg, err := model.NewRegistry(lightbulb.Define().Type)
		if err != nil {
			stop()
			return nil, nil, err
		}
		cfg := node.Config{
			NodeID: fmt.Sprintf("bench-%d-%d", size, i+1),
			NATS:   node.NATSConfig{URL: url},
			Logger: slog.New(slog.DiscardHandler),
			Cluster: &node.ClusterConfig{Gossip: cluster.Config{BindAddr: "127.0.0.1", BindPort: 0,
				Profile: cluster.ProfileLocal, Join: seeds},
				Idempotency: node.IdempotencyConfig{Disabled: noFilter}},
		}
		if p.store == "cassandra" {
			cfg.Executor.Flushers = 4
		}
		if p.flushers > 0 {
			cfg.Executor.Flushers = p.flushers
		}
		n, err := node.New(context.Background(), cfg, reg, node.WithEventLog(events), node.WithCommandLog(commands))
		if err != nil {
			stop()
			return nil, nil, err
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		agree := true
		fp := nodes[0].ClusterInfo().Fingerprint
		for _, n := range nodes {
			info := n.ClusterInfo()
			agree = agree && info.InRing() == size && info.Fingerprint == fp
			if !noFilter {
				g := info.Idempotency
				agree = agree && g != nil && g.Leader != "" && len(g.Voters) == min(size, 3)
			}
		}
		if agree {
			return nodes, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("%d nodes did not agree on a ring (and an idempotency group) within 30s", size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
