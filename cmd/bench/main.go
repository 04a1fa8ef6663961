// Command bench measures the single-node command path against its raw
// baseline in one run, on one NATS server:
//
//   - raw-nats: NATS request-reply echo (a responder that answers each
//     request with its own body) at concurrency C;
//   - command-path: lightbulb switchOn/switchOff alternating over K
//     aggregates on a node with its durable embedded store, at the same C.
//
// It prints throughput, p50 and p99 for both and ends with the line
// "command-path/raw-nats ratio: X.XX" (command-path throughput over raw).
//
//	go run ./cmd/bench -c 128 -k 10000 -duration 10s
//
// With -store cassandra the node keeps its logs in Cassandra and the
// baseline is the storage ceiling instead: raw gocql conditional batches
// writing the same event rows (the head fence and one event) at the same
// concurrency, ending with "command-path/raw-cassandra ratio: X.XX".
//
//	scripts/cassandra.sh start
//	go run ./cmd/bench -store cassandra -c 64 -k 2000
//
// With -nodes N it compares clusters instead: a 1-node and an N-node
// cluster, all in this process on one NATS server and a shared store
// (in-memory by default, or -store cassandra), at the same concurrency,
// ending with "N-node/1-node ratio: X.XX". Adding -filter compares the
// N-node cluster without and with the replicated idempotency filter,
// ending with "with-filter/without-filter ratio: X.XX".
//
//	go run ./cmd/bench -nodes 3 -c 128 -k 10000
//	go run ./cmd/bench -nodes 3 -filter -store cassandra -c 64 -k 2000
//
// With -delivery it measures what at-least-once event publication costs:
// the command path with the events kept in a JetStream stream, with
// best-effort publication and then with the outbox (package eventbus),
// ending with "outbox/best-effort ratio: X.XX"; it also checks that the
// stream holds every appended event.
//
//	go run ./cmd/bench -delivery -c 128 -k 10000
//	go run ./cmd/bench -delivery -store cassandra -c 64 -k 2000
//
// With -rejections it measures what fencing decisions that write nothing
// costs: a workload where -reject-share (default 0.9) of the commands are
// rejected by the bulb's state, first answered unfenced, then fenced by a
// head check, ending with "fenced/unfenced ratio: X.XX".
//
//	go run ./cmd/bench -rejections -store cassandra -c 64 -k 2000
//
// With -queries it measures the same for state queries: -query-share
// (default 0.9) of the requests read a bulb's current state, the rest
// switch it; first the queries are answered from the cache unfenced, then
// after a head check.
//
//	go run ./cmd/bench -queries -store cassandra -c 64 -k 2000
//
// With -facts it measures fact ingestion beside the command path: facts
// in batches of -facts-batch (default 100) over K aggregates (default
// 1000) at concurrency C (default 16), first each aggregate's facts in
// increasing event time, then with -late-share (default 0.1) of them late,
// stamped before facts already sent for their aggregate (checked against
// the replies' late marks), each scenario on a fresh store. It prints
// facts/s beside commands/s and ends with "out-of-order/in-order ratio:
// X.XX"; any fact answered with an error fails the run.
//
//	go run ./cmd/bench -facts -duration 5s
//	go run ./cmd/bench -facts -store cassandra
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/cassandra"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type params struct {
	c, k, conns      int
	duration, warmup time.Duration
	dataDir          string
	cpuProfile       string
	store, cassandra string
	flushers         int
	nodes            int
	filter, noFilter bool
	delivery         bool
	rejections       bool
	rejectShare      float64 // of the measured commands, how many are meant to be rejected
	queries          bool
	queryShare       float64 // of the measured requests, how many are state queries
	facts            bool
	factsBatch       int     // facts per request
	factsRounds      int     // alternating measured rounds of the two fact scenarios
	lateShare        float64 // of the facts of the out-of-order scenario, how many are late
}

func run() error {
	var p params
	flag.IntVar(&p.c, "c", 128, "concurrent requests in flight (client goroutines)")
	flag.IntVar(&p.k, "k", 10_000, "number of lightbulb aggregates")
	flag.IntVar(&p.conns, "conns", 4, "client NATS connections (shared by the goroutines)")
	flag.DurationVar(&p.duration, "duration", 10*time.Second, "measured time per scenario")
	flag.DurationVar(&p.warmup, "warmup", 2*time.Second, "unmeasured time before each scenario")
	flag.StringVar(&p.dataDir, "data-dir", "", "node data dir (default: a fresh temporary dir)")
	flag.StringVar(&p.cpuProfile, "cpuprofile", "", "write a CPU profile of the command-path run to this file")
	flag.StringVar(&p.store, "store", "embedded", "the node's store: embedded or cassandra")
	flag.IntVar(&p.flushers, "flushers", 0, "executor flushers (0: the node's default for the store)")
	flag.StringVar(&p.cassandra, "cassandra", "127.0.0.1:9042", "Cassandra contact point for -store cassandra")
	flag.IntVar(&p.nodes, "nodes", 0, "compare a 1-node cluster with an N-node cluster instead (shared -store memory or cassandra)")
	flag.BoolVar(&p.filter, "filter", false, "with -nodes: compare the N-node cluster without and with the idempotency filter")
	flag.BoolVar(&p.noFilter, "no-filter", false, "with -nodes: run both clusters without the idempotency filter (isolates forwarding)")
	flag.BoolVar(&p.delivery, "delivery", false, "compare best-effort event publication with the outbox (at least once), events kept in a JetStream stream")
	flag.BoolVar(&p.rejections, "rejections", false, "measure what fencing rejections costs: a rejection-heavy workload (-reject-share) with and without the head check")
	flag.Float64Var(&p.rejectShare, "reject-share", 0.9, "with -rejections: the share of commands that are rejected")
	flag.BoolVar(&p.queries, "queries", false, "measure what fencing state queries costs: a query-heavy workload (-query-share) with and without the head check")
	flag.Float64Var(&p.queryShare, "query-share", 0.9, "with -queries: the share of requests that are state queries")
	flag.BoolVar(&p.facts, "facts", false, fmt.Sprintf("measure fact ingestion (batches over K aggregates, in order and with -late-share late) beside the command path; default -c %d -k %d", factsDefaultC, factsDefaultK))
	flag.IntVar(&p.factsBatch, "facts-batch", 100, "with -facts: facts per request")
	flag.IntVar(&p.factsRounds, "facts-rounds", 3, "with -facts: measure the in-order and out-of-order scenarios in this many alternating rounds (-duration in all)")
	flag.Float64Var(&p.lateShare, "late-share", 0.1, "with -facts: the share of facts sent late in the out-of-order scenario")
	flag.Parse()
	if p.facts {
		if !isFlagSet("c") {
			p.c = factsDefaultC
		}
		if !isFlagSet("k") {
			p.k = factsDefaultK
		}
		if p.factsBatch < 1 || p.factsBatch > api.MaxFactsPerRequest || p.lateShare < 0 || p.lateShare > 1 || p.factsRounds < 1 {
			return fmt.Errorf("need 1 <= facts-batch <= %d, 0 <= late-share <= 1, facts-rounds >= 1 (got %d, %g, %d)",
				api.MaxFactsPerRequest, p.factsBatch, p.lateShare, p.factsRounds)
		}
	}
	if !p.rejections {
		p.rejectShare = 0
	}
	if !p.queries {
		p.queryShare = 0
	}
	if p.rejectShare < 0 || p.rejectShare > 1 || p.queryShare < 0 || p.queryShare > 1 {
		return fmt.Errorf("need 0 <= reject-share, query-share <= 1 (got %g, %g)", p.rejectShare, p.queryShare)
	}
	if p.nodes > 0 && !isFlagSet("store") {
		p.store = "memory"
	}
	if p.c < 1 || p.k < p.c || p.conns < 1 {
		return fmt.Errorf("need c >= 1, k >= c, conns >= 1 (got c=%d k=%d conns=%d)", p.c, p.k, p.conns)
	}

	sopts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 4 << 20}
	if p.delivery {
		jsDir, err := os.MkdirTemp("", "concursus-bench-js-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(jsDir)
		sopts.JetStream, sopts.StoreDir = true, jsDir
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return errors.New("NATS server did not start")
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d, %s; NATS server %s at %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), server.VERSION, url)
	fmt.Printf("params: C=%d K=%d client connections=%d duration=%s warmup=%s\n\n", p.c, p.k, p.conns, p.duration, p.warmup)

	conns := make([]*nats.Conn, p.conns)
	for i := range conns {
		if conns[i], err = nats.Connect(url); err != nil {
			return err
		}
		defer conns[i].Close()
	}

	if p.nodes > 0 {
		if p.nodes < 2 {
			return fmt.Errorf("-nodes %d: want at least 2", p.nodes)
		}
		return benchClusters(p, url, conns)
	}

	if p.facts {
		return benchFacts(p, url, conns, freshStores(p, "facts"))
	}

	if p.rejections {
		return benchRejections(p, url, conns, freshStores(p, "rejections"))
	}
	if p.queries {
		return benchRejections(p, url, conns, freshStores(p, "queries"))
	}

	if p.delivery {
		return benchDelivery(p, url, conns, freshStores(p, "delivery"))
	}

	var opener node.StoreOpener
	baseline := "raw-nats"
	var raw *result
	switch p.store {
	case "embedded":
		if raw, err = benchRaw(p, url, conns); err != nil {
			return err
		}
	case "cassandra":
		baseline = "raw-cassandra"
		ccfg, drop := benchCassandra(p, "bench")
		defer drop()
		if raw, err = benchRawCassandra(p, ccfg); err != nil {
			return err
		}
		opener = cassandraOpener(ccfg)
	default:
		return fmt.Errorf("-store %q: want embedded or cassandra", p.store)
	}
	raw.print(baseline)

	cmd, err := benchCommands(p, url, conns, opener)
	if err != nil {
		return err
	}
	cmd.print("command-path")
	fmt.Printf("\ncommand-path/%s ratio: %.2f\n", baseline, cmd.throughput()/raw.throughput())
	return nil
}

// freshStores returns what gives each scenario of a comparison its own
// store: the node's embedded store in a fresh directory (a nil opener), or
// with -store cassandra a fresh keyspace, dropped by the returned func.
func freshStores(p params, scenario string) func() (node.StoreOpener, func()) {
	return func() (node.StoreOpener, func()) {
		if p.store != "cassandra" {
			return nil, func() {}
		}
		ccfg, drop := benchCassandra(p, "bench_"+scenario)
		return cassandraOpener(ccfg), drop
	}
}

// cassandraOpener opens the node's logs as ccfg says, with the outbox.
func cassandraOpener(ccfg cassandra.Config) node.StoreOpener {
	return func(ctx context.Context) (node.Stores, error) {
		st, err := cassandra.Open(ctx, ccfg)
		if err != nil {
			return node.Stores{}, err
		}
		return node.Stores{Events: st.EventLog(), Commands: st.CommandLog(), Close: st.Close}, nil
	}
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// result is what one scenario measured.
type result struct {
	ok, failed int64
	elapsed    time.Duration
	latencies  []time.Duration
	note       string
}

func (r *result) throughput() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r *result) print(name string) {
	slices.Sort(r.latencies)
	pct := func(q float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[int(q*float64(len(r.latencies)-1))]
	}
	fmt.Printf("%-13s %9.0f req/s  p50 %8s  p99 %8s  ok %d  failed %d%s\n", name+":", r.throughput(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), r.ok, r.failed, r.note)
}

// drive runs c workers calling op until warmup+duration has passed and
// records only the measured part.
func drive(p params, op func(worker int, ctx context.Context) error) *result {
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		ok, fail  atomic.Int64
		mu        sync.Mutex
		all       []time.Duration
		wg        sync.WaitGroup
	)
	for w := range p.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			for !stop.Load() {
				t0 := time.Now()
				err := op(w, context.Background())
				d := time.Since(t0)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					fail.Add(1)
					continue
				}
				ok.Add(1)
				local = append(local, d)
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	time.Sleep(p.warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(p.duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	return &result{ok: ok.Load(), failed: fail.Load(), elapsed: elapsed, latencies: all}
}

// benchRaw measures request-reply echo with a body the size of a command.
func benchRaw(p params, url string, conns []*nats.Conn) (*result, error) {
	rc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Same shape as the node: several queue subscriptions on one connection.
	for range node.DefaultConfig().Subscribers {
		if _, err := rc.QueueSubscribe("bench.echo", "echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
			return nil, err
		}
	}
	if err := rc.Flush(); err != nil {
		return nil, err
	}
	body := []byte(`{"aggregateId":"bench-000000000","command":"switchOn","commandId":"0195b3c4-0000-7000-8000-000000000000","args":{}}`)
	return drive(p, func(w int, ctx context.Context) error {
		_, err := conns[w%len(conns)].Request("bench.echo", body, 10*time.Second)
		return err
	}), nil
}

// benchCommands measures the full command path: decode, route to the
// aggregate's mailbox, decide, durable append, command record, publish,
// reply.
func benchCommands(p params, url string, conns []*nats.Conn, opener node.StoreOpener) (*result, error) {
	r, _, err := benchCommandsWith(p, url, conns, opener, nil)
	return r, err
}

// benchCommandsWith runs the command-path scenario on a node configured
// by tweak, and returns the result with the number of appends (one event
// each in this workload) the node made, counted after it shut down.
func benchCommandsWith(p params, url string, conns []*nats.Conn, opener node.StoreOpener, tweak func(*node.Config)) (*result, int64, error) {
	n, stop, err := startBenchNode(p, url, opener, tweak)
	if err != nil {
		return nil, 0, err
	}
	r, err := benchWorkload(p, conns, "", []*node.Node{n})
	if serr := stop(); serr != nil && err == nil {
		err = serr
	}
	return r, n.Executor().Stats().Appended, err
}

// baselineAndVariant runs the command-path scenario twice, each on a
// fresh store from opener: first the baseline (names[0], the node
// configured by tweak(c, false)), then the variant (names[1],
// tweak(c, true)). After each run check, if not nil, inspects what the
// node appended. It ends with "<names[1]>/<names[0]> ratio: X.XX".
func baselineAndVariant(p params, url string, conns []*nats.Conn, opener func() (node.StoreOpener, func()), names [2]string,
	tweak func(c *node.Config, variant bool), check func(variant bool, appended int64) error) error {
	var results [2]*result
	for i, name := range names {
		variant := i == 1
		op, done := opener()
		r, appended, err := benchCommandsWith(p, url, conns, op, func(c *node.Config) { tweak(c, variant) })
		done()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.print(name)
		if check != nil {
			if err := check(variant, appended); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		results[i] = r
	}
	fmt.Printf("\n%s/%s ratio: %.2f\n", names[1], names[0], results[1].throughput()/results[0].throughput())
	return nil
}

// startBenchNode starts the node a single-node scenario measures, on the
// store opener gives (nil: the embedded store in -data-dir or a fresh
// temporary dir), configured by tweak, and waits until it is ready. stop
// shuts it down and removes the temporary dir; calls after the first
// return the first one's error.
func startBenchNode(p params, url string, opener node.StoreOpener, tweak func(*node.Config)) (n *node.Node, stop func() error, err error) {
	dir, removeDir := p.dataDir, func() {}
	if dir == "" {
		d, err := os.MkdirTemp("", "concursus-bench-")
		if err != nil {
			return nil, nil, err
		}
		dir, removeDir = d, func() { os.RemoveAll(d) }
	}
	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	cfg := node.Config{
		NodeID:  "bench",
		DataDir: dir,
		NATS:    node.NATSConfig{URL: url},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	var opts []node.Option
	if opener != nil {
		opts = append(opts, node.WithStoreOpener("cassandra", opener))
		cfg.Executor.Flushers = 4 // as cmd/node does for Cassandra
	}
	if p.flushers > 0 {
		cfg.Executor.Flushers = p.flushers
	}
	if tweak != nil {
		tweak(&cfg)
	}
	if n, err = node.New(context.Background(), cfg, reg, opts...); err != nil {
		removeDir()
		return nil, nil, err
	}
	var (
		once    sync.Once
		stopErr error
	)
	stop = func() error {
		once.Do(func() {
			defer removeDir()
			if err := n.Shutdown(context.Background()); err != nil {
				stopErr = fmt.Errorf("node shutdown: %w", err)
			}
		})
		return stopErr
	}
	if err := waitReady(n); err != nil {
		_ = stop()
		return nil, nil, err
	}
	return n, stop, nil
}

// waitReady waits up to a minute for the node's store.
func waitReady(n *node.Node) error {
	for deadline := time.Now().Add(time.Minute); ; {
		if ok, status := n.Ready(); ok {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("store not ready: %s", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// benchWorkload sets up K lightbulbs (ids start with idPrefix) and then
// measures switchOn/switchOff at concurrency C through the queue group
// that nodes serve.
func benchWorkload(p params, conns []*nats.Conn, idPrefix string, nodes []*node.Node) (*result, error) {
	stats := func() (s executorTotals) {
		for _, n := range nodes {
			st := n.Executor().Stats()
			s.batches += st.Batches
			s.appended += st.Appended
			s.inFlight += st.InFlight
		}
		return s
	}
	subject := api.CommandSubject(api.DefaultPrefix, lightbulb.TypeName)
	// Requests carry a command id, as the Go client always sends one, so
	// the node's duplicate check runs on every command.
	var seq atomic.Uint64
	runID := time.Now().UnixNano()
	send := func(nc *nats.Conn, id, command string, args string) error {
		body := fmt.Sprintf(`{"aggregateId":%q,"command":%q,"commandId":"%x-%d","args":%s}`, id, command, runID, seq.Add(1), args)
		m, err := nc.Request(subject, []byte(body), 30*time.Second)
		if err != nil {
			return err
		}
		// Replies start with {"ok":true on success; decode only failures,
		// as the raw baseline decodes nothing.
		if bytes.HasPrefix(m.Data, []byte(`{"ok":true`)) {
			return nil
		}
		var r api.Reply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return err
		}
		if !r.OK {
			return r.Error
		}
		return nil
	}

	// Set-up (not measured): create and screw in every bulb.
	fmt.Printf("setting up %d lightbulbs (create + screwIn)...\n", p.k)
	t0 := time.Now()
	var wg sync.WaitGroup
	var setupErr atomic.Value
	for w := range p.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc := conns[w%len(conns)]
			for i := w; i < p.k; i += p.c {
				id := fmt.Sprintf("%sbench-%09d", idPrefix, i)
				if err := send(nc, id, "create", `{"wattage":60}`); err != nil {
					setupErr.Store(err)
					return
				}
				if err := send(nc, id, "screwIn", `{"location":"lab"}`); err != nil {
					setupErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := setupErr.Load().(error); err != nil {
		return nil, fmt.Errorf("set-up: %w", err)
	}
	fmt.Printf("set-up done in %s\n", time.Since(t0).Round(time.Millisecond))

	if p.cpuProfile != "" {
		f, err := os.Create(p.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}

	// Each worker owns the bulbs i ≡ w (mod C) and walks them round-robin;
	// it knows each bulb's state, so commands alternate on/off and none is
	// rejected.
	on := make([]bool, p.k)
	next := make([]int, p.c)
	rng := make([]*rand.Rand, p.c)
	for w := range rng {
		rng[w] = rand.New(rand.NewPCG(uint64(w), 42))
	}
	var rejected, queried, answered atomic.Int64 // warm-up included
	querySubject := api.QuerySubject(api.DefaultPrefix, lightbulb.TypeName)
	query := func(nc *nats.Conn, id string) error {
		m, err := nc.Request(querySubject, fmt.Appendf(nil, `{"aggregateId":%q}`, id), 30*time.Second)
		if err != nil {
			return err
		}
		var r api.QueryReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return err
		}
		if !r.OK {
			return r.Error
		}
		if !r.Exists {
			return fmt.Errorf("query of %s: the bulb does not exist", id)
		}
		return nil
	}
	before := stats()
	// Sample how many commands are inside the executor (queued, deciding
	// or waiting for their write) versus elsewhere (NATS, decoding, replies).
	var samples, inExec atomic.Int64
	sampling := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampling:
				return
			case <-tick.C:
				samples.Add(1)
				inExec.Add(stats().inFlight)
			}
		}
	}()
	res := drive(p, func(w int, ctx context.Context) error {
		i := w + next[w]*p.c
		if i >= p.k {
			next[w], i = 0, w
		}
		next[w]++
		cmd := "switchOn"
		if on[i] {
			cmd = "switchOff"
		}
		answered.Add(1)
		if p.queryShare > 0 && rng[w].Float64() < p.queryShare {
			queried.Add(1)
			return query(conns[w%len(conns)], fmt.Sprintf("%sbench-%09d", idPrefix, i))
		}
		if p.rejectShare > 0 && rng[w].Float64() < p.rejectShare {
			// The command the bulb's state refuses (already on / off).
			if cmd == "switchOn" {
				cmd = "switchOff"
			} else {
				cmd = "switchOn"
			}
			err := send(conns[w%len(conns)], fmt.Sprintf("%sbench-%09d", idPrefix, i), cmd, `{}`)
			var apiErr *api.Error
			if errors.As(err, &apiErr) && apiErr.Code == api.CodeRejected {
				rejected.Add(1)
				return nil
			}
			if err == nil {
				return fmt.Errorf("%s on bulb %d was accepted; want it rejected", cmd, i)
			}
			return err
		}
		err := send(conns[w%len(conns)], fmt.Sprintf("%sbench-%09d", idPrefix, i), cmd, `{}`)
		if err == nil {
			on[i] = !on[i]
		}
		return err
	})
	close(sampling)
	after := stats()
	batches := after.batches - before.batches
	if batches > 0 {
		res.note = fmt.Sprintf("  (mean append batch %.1f, mean in executor %.0f of C=%d)",
			float64(after.appended-before.appended)/float64(batches), float64(inExec.Load())/float64(max(samples.Load(), 1)), p.c)
	}
	if n := rejected.Load(); n > 0 {
		res.note += fmt.Sprintf("  (%.0f%% of the commands rejected, warm-up included)", 100*float64(n)/float64(max(answered.Load(), 1)))
	}
	if n := queried.Load(); n > 0 {
		res.note += fmt.Sprintf("  (%.0f%% of the requests state queries, warm-up included)", 100*float64(n)/float64(max(answered.Load(), 1)))
	}
	return res, nil
}

// executorTotals sums executor counters over the nodes of a run.
type executorTotals struct{ batches, appended, inFlight int64 }
