package main

// node cluster: ask every node of a running cluster for its account of the
// cluster (api.ClusterInfo on api.AdminClusterSubject) and print who owns
// what. gatherClusterInfo does the NATS round trip; writeClusterReport only
// formats what was gathered.

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/node"
)

// defaultClusterURL is where `node cluster` looks when no --nats-url is
// given: the embedded server of a node started with its defaults.
const defaultClusterURL = "nats://127.0.0.1:4222"

// lastReplyGrace is how long gathering goes on after as many nodes answered
// as the first replies count alive members, for a member that joined since
// or a node outside the ring (standalone, other ring settings).
const lastReplyGrace = 200 * time.Millisecond

func runCluster(args []string, stdout, stderr io.Writer) int {
	nc := node.NATSConfig{URL: defaultClusterURL}
	prefix := api.DefaultPrefix
	wait := durationValue(time.Second)
	var partitions, asJSON boolValue
	fs := flag.NewFlagSet("node cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&wait, "wait", "how long to gather replies; stops sooner once every alive member has answered")
	fs.Var(&partitions, "partitions", "also print the partition → owner table")
	fs.Var(&asJSON, "json", "print the replies, a JSON array of api.ClusterInfo, and nothing else")
	settings := natsSettings(&nc, &prefix)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: node cluster [flags]

Asks every node on the NATS server for its account of the cluster (one
request on <prefix>.admin.cluster, which every node answers;
<prefix>.node.<id>.admin asks a single node) and prints:
  - the members (state, gossip address, partitions owned, whether in the
    ring) as the answering nodes see them, and whether those nodes agree on
    the partition table (its fingerprint), naming the ones that do not;
  - per node, its routing counters and a few executor counters;
  - with --partitions, the owner of every partition.
A node running alone is shown as standalone. Exit status 1 when no node
answers (wrong --nats-url or --prefix, or no node running).

Flags (the NATS ones share the node's environment variables):
`)
		fs.PrintDefaults()
	}
	if _, code, ok := parseSettings(fs, settings, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "node cluster: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if nc.URL == "" { // CONCURSUS_NATS_URL="" means an embedded server to a node
		nc.URL = defaultClusterURL
	}
	if err := nc.CheckCredentials(); err != nil {
		fmt.Fprintf(stderr, "node cluster: %v\n", err)
		return 2
	}
	if prefix == "" || strings.ContainsAny(prefix, " *>\t\r\n") {
		fmt.Fprintf(stderr, "node cluster: --prefix %q is not a NATS subject prefix\n", prefix)
		return 2
	}
	if wait <= 0 {
		fmt.Fprintf(stderr, "node cluster: --wait %v must be positive\n", time.Duration(wait))
		return 2
	}

	conn, err := nats.Connect(nc.URL, natsOptions(nc, "concursus-cluster-report")...)
	if err != nil {
		fmt.Fprintf(stderr, "node cluster: connecting to NATS at %s: %v (is a node running there? see --nats-url)\n", redactURL(nc.URL), err)
		return 1
	}
	defer conn.Close()
	subject := api.AdminClusterSubject(prefix)
	replies, bad, err := gatherClusterInfo(conn, subject, time.Duration(wait))
	if err != nil {
		fmt.Fprintf(stderr, "node cluster: %v\n", err)
		return 1
	}
	for _, b := range bad {
		fmt.Fprintf(stderr, "node cluster: ignoring a reply that is not a cluster report: %v\n", b)
	}
	if len(replies) == 0 {
		fmt.Fprintf(stderr, "node cluster: no node answered on %s at %s within %v: check --nats-url and --prefix, and that a node is running\n",
			subject, conn.ConnectedUrlRedacted(), time.Duration(wait))
		return 1
	}
	if asJSON {
		err = writeClusterJSON(stdout, replies)
	} else {
		err = writeClusterReport(stdout, replies, bool(partitions))
	}
	if err != nil {
		fmt.Fprintf(stderr, "node cluster: %v\n", err)
		return 1
	}
	return 0
}

// natsOptions are the connect options of the admin subcommands: their
// name, a connect timeout and the credentials of nc.
func natsOptions(nc node.NATSConfig, name string) []nats.Option {
	return append([]nats.Option{nats.Name(name), nats.Timeout(5 * time.Second)}, nc.AuthOptions()...)
}

// redactURL hides the passwords of a comma-separated list of NATS URLs.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// clusterReply is one node's answer.
type clusterReply struct {
	raw  json.RawMessage
	info api.ClusterInfo
}

// gatherClusterInfo publishes one request on subject with a fresh inbox
// and gathers the replies until wait has passed, or lastReplyGrace after
// as many nodes answered as the replies count alive members in the ring.
// No replies at all is not an error (the caller reports it); bad lists
// replies that could not be read. The replies are sorted by node id.
func gatherClusterInfo(nc *nats.Conn, subject string, wait time.Duration) (replies []clusterReply, bad []error, err error) {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, nil, fmt.Errorf("subscribing to the reply inbox: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return nil, nil, fmt.Errorf("publishing on %s: %w", subject, err)
	}
	if err := nc.Flush(); err != nil {
		return nil, nil, fmt.Errorf("publishing on %s: %w", subject, err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	deadline := time.Now().Add(wait)
	expected, shortened := 0, false
	for {
		select {
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
				return nil, nil, nil // no responders: nobody subscribes to subject
			}
			r := clusterReply{raw: json.RawMessage(m.Data)}
			if err := json.Unmarshal(m.Data, &r.info); err != nil || r.info.NodeID == "" {
				bad = append(bad, fmt.Errorf("%.80q", m.Data))
				continue
			}
			replies = append(replies, r)
			if r.info.Clustered {
				expected = max(expected, inRing(r.info))
			}
			if !shortened && expected > 0 && len(replies) >= expected {
				shortened = true
				timer.Reset(min(lastReplyGrace, time.Until(deadline)))
			}
		case <-timer.C:
			slices.SortStableFunc(replies, func(a, b clusterReply) int { return strings.Compare(a.info.NodeID, b.info.NodeID) })
			return replies, bad, nil
		}
	}
}

// inRing counts the alive members in a node's ring.
func inRing(info api.ClusterInfo) int {
	n := 0
	for _, m := range info.Members {
		if m.InRing && m.State == "alive" {
			n++
		}
	}
	return n
}

// writeClusterJSON writes the replies as they came, as one JSON array.
func writeClusterJSON(w io.Writer, replies []clusterReply) error {
	raws := make([]json.RawMessage, len(replies))
	for i, r := range replies {
		raws[i] = r.raw
	}
	out, err := json.MarshalIndent(raws, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// group is the nodes that reported the same thing.
type group struct {
	nodes []string
	infos []api.ClusterInfo // their reports, in the order of nodes
	first api.ClusterInfo   // infos[0]
}

// groupBy groups replies by key, the largest group first (ties: by the
// first node id), nodes in id order.
func groupBy(replies []clusterReply, key func(api.ClusterInfo) string) []*group {
	var groups []*group
	index := make(map[string]*group)
	for _, r := range replies {
		k := key(r.info)
		g := index[k]
		if g == nil {
			g = &group{first: r.info}
			index[k] = g
			groups = append(groups, g)
		}
		g.nodes = append(g.nodes, r.info.NodeID)
		g.infos = append(g.infos, r.info)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return len(b.nodes) - len(a.nodes) })
	return groups
}

// membersKey identifies what a node says about the alive members. The
// departed ones are left out: each node remembers those it saw go (a node
// that joined later knows fewer), and they own nothing.
func membersKey(info api.ClusterInfo) string {
	var b strings.Builder
	for _, m := range info.Members {
		if m.State == "alive" {
			fmt.Fprintf(&b, "%s|%s|%d|%t|%s\n", m.ID, m.Addr, m.Partitions, m.InRing, m.Version)
		}
	}
	return b.String()
}

// maxDeparted bounds the departed members listed in a members table: with
// a fresh id per process every restart leaves one behind.
const maxDeparted = 10

// groupMembers returns the alive members of a group's view, then the
// members any of its nodes saw depart (dead or left), each sorted by id,
// and how many departed ones were cut past maxDeparted.
func groupMembers(g *group) (members []api.ClusterMember, cut int) {
	seen := make(map[string]bool)
	var departed []api.ClusterMember
	for _, m := range g.first.Members {
		if m.State == "alive" {
			members = append(members, m)
			seen[m.ID] = true
		}
	}
	for _, info := range g.infos {
		for _, m := range info.Members {
			if !seen[m.ID] && m.State != "alive" {
				departed = append(departed, m)
				seen[m.ID] = true
			}
		}
	}
	byID := func(a, b api.ClusterMember) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(members, byID)
	slices.SortFunc(departed, byID)
	if len(departed) > maxDeparted {
		cut = len(departed) - maxDeparted
		departed = departed[:maxDeparted]
	}
	return append(members, departed...), cut
}

// writeClusterReport prints the members, the ring agreement, the
// counters of each node and, with partitions, the partition table.
func writeClusterReport(w io.Writer, replies []clusterReply, partitions bool) error {
	var clustered, standalone []clusterReply
	answered := make(map[string]bool)
	for _, r := range replies {
		answered[r.info.NodeID] = true
		if r.info.Clustered {
			clustered = append(clustered, r)
		} else {
			standalone = append(standalone, r)
		}
	}
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "%s answered: %d in a cluster, %d standalone\n", plural(len(replies), "node"), len(clustered), len(standalone))
	for _, r := range standalone {
		fmt.Fprintf(bw, "standalone: %s (version %s) runs alone and owns every aggregate\n", r.info.NodeID, r.info.Version)
	}
	if len(clustered) > 0 && len(standalone) > 0 {
		fmt.Fprintf(bw, "WARNING: standalone nodes share this NATS server and prefix with a cluster: they take a share of its requests and run them without routing them to their owners\n")
	}

	var rings []*group
	if len(clustered) > 0 {
		rings = groupBy(clustered, func(i api.ClusterInfo) string { return i.Fingerprint + " " + i.Ring })
		if len(rings) == 1 {
			g := rings[0]
			agree := fmt.Sprintf("all %d nodes agree on the partition table", len(g.nodes))
			switch len(g.nodes) {
			case 1:
				agree = "one clustered node answered, nothing to compare"
			case 2:
				agree = "both nodes agree on the partition table"
			}
			fmt.Fprintf(bw, "ring: %s (fingerprint %s, %d partitions, ring %s)\n",
				agree, orNone(g.first.Fingerprint), len(g.first.Owners), orNone(g.first.Ring))
		} else {
			var others []string
			for _, g := range rings[1:] {
				others = append(others, g.nodes...)
			}
			slices.Sort(others)
			fmt.Fprintf(bw, "ring: the nodes DISAGREE on the partition table: %s %s from %s (normal while members join or leave; lasting, it means gossip between them is cut or their settings differ)\n",
				strings.Join(others, ", "), verb(len(others), "differs", "differ"), strings.Join(rings[0].nodes, ", "))
			for _, g := range rings {
				fmt.Fprintf(bw, "  fingerprint %s, %d partitions, ring %s, view %d: %s\n",
					orNone(g.first.Fingerprint), len(g.first.Owners), orNone(g.first.Ring), g.first.ViewVersion, strings.Join(g.nodes, ", "))
			}
		}

		for _, g := range groupBy(clustered, membersKey) {
			fmt.Fprintf(bw, "\nmembers, as %s %s them:\n", whose(g, len(clustered)), verb(len(g.nodes), "sees", "see"))
			tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tGOSSIP ADDR\tPARTITIONS\tIN RING\tVERSION\tANSWERED")
			members, cut := groupMembers(g)
			for _, m := range members {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, m.State, m.Addr, m.Partitions, yesNo(m.InRing), orNone(m.Version), yesNo(answered[m.ID]))
			}
			_ = tw.Flush()
			if cut > 0 {
				fmt.Fprintf(bw, "… and %d more departed members (--json lists them)\n", cut)
			}
		}
	}

	fmt.Fprintf(bw, "\nrouting (requests since each node started):\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tLOCAL\tDIRECT\tFORWARDED\tREROUTED\tDELAYED\tEXHAUSTED\tRING CHANGES\tPARTITIONS MOVED")
	for _, r := range replies {
		c := r.info.Routing
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.info.NodeID, c.Local, c.Direct, c.Forwarded, c.Rerouted, c.Delayed, c.Exhausted, c.RingChanges, c.PartitionsMoved)
	}
	_ = tw.Flush()
	fmt.Fprintf(bw, "(local: ran here, from the queue group; direct: ran here, forwarded by another node; forwarded: passed to the owner;\n")
	fmt.Fprintf(bw, " rerouted: came forwarded, passed on by a newer ring; delayed: waited for the rings to agree; exhausted: out of time or hops)\n")
	fmt.Fprintf(bw, "\nexecutor (commands since each node started):\n")
	tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREADY\tACCEPTED\tREJECTED\tUNAVAILABLE\tTIMEOUTS\tIN FLIGHT\tCACHED")
	for _, r := range replies {
		s := r.info.Stats
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.info.NodeID, yesNo(r.info.Ready), s.Accepted, s.Rejected, s.Unavailable, s.Timeouts, s.InFlight, s.Cached)
	}
	_ = tw.Flush()
	writeIdempotency(bw, replies)

	if partitions {
		if len(rings) == 0 {
			fmt.Fprintf(bw, "\npartitions: none (no node is in a cluster; a standalone node owns every aggregate)\n")
		} else {
			for _, g := range rings {
				writePartitionTable(bw, g, len(clustered))
			}
		}
	}
	return bw.err
}

// partitionsPerRow and partitionsPerGroup shape the partition grid.
const (
	partitionsPerRow   = 50
	partitionsPerGroup = 10
)

// ownerSymbols name the owners in the partition grid.
const ownerSymbols = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// writePartitionTable prints the owner of every partition as one nodes'
// group sees it: a grid of one symbol per partition with a legend, or one
// line per partition when there are more owners than symbols.
func writePartitionTable(w io.Writer, g *group, clustered int) {
	owners := g.first.Owners
	count := make(map[string]int)
	var ids []string
	for _, o := range owners {
		if count[o] == 0 {
			ids = append(ids, o)
		}
		count[o]++
	}
	slices.Sort(ids)
	fmt.Fprintf(w, "\npartitions: owner of each of the %d, as %s %s them (fingerprint %s):\n",
		len(owners), whose(g, clustered), verb(len(g.nodes), "routes", "route"), orNone(g.first.Fingerprint))
	if len(ids) > len(ownerSymbols) {
		for p, o := range owners {
			fmt.Fprintf(w, "%6d  %s\n", p, orNone(o))
		}
		return
	}
	symbol := make(map[string]byte)
	for i, id := range ids {
		symbol[id] = ownerSymbols[i]
		fmt.Fprintf(w, "  %c = %s (%d)\n", ownerSymbols[i], orNone(id), count[id])
	}
	for row := 0; row < len(owners); row += partitionsPerRow {
		var b strings.Builder
		fmt.Fprintf(&b, "%6d ", row)
		for p := row; p < min(row+partitionsPerRow, len(owners)); p++ {
			if (p-row)%partitionsPerGroup == 0 {
				b.WriteByte(' ')
			}
			b.WriteByte(symbol[owners[p]])
		}
		fmt.Fprintln(w, b.String())
	}
	fmt.Fprintf(w, "(row label + position in the row = partition number)\n")
}

// errWriter remembers the first write error so that the report can be
// written without checking each line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// whose names the nodes of a group: "all 3 nodes" (or "both nodes") when it holds every
// clustered node, else their ids.
func whose(g *group, clustered int) string {
	switch {
	case len(g.nodes) == clustered && clustered == 2:
		return "both nodes"
	case len(g.nodes) == clustered && clustered > 2:
		return fmt.Sprintf("all %d nodes", clustered)
	}
	return strings.Join(g.nodes, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeIdempotency prints each node's part in the idempotency filter's
// raft group, when any node runs one.
func writeIdempotency(w io.Writer, replies []clusterReply) {
	var rows, clock []string
	groups, leaders := map[string]bool{}, map[string]bool{}
	conflict, forming := false, false
	for _, r := range replies {
		g := r.info.Idempotency
		if g == nil {
			continue
		}
		if g.GroupID == "" {
			forming = true // not (yet) in a group: joining, not a second group
		} else {
			groups[g.GroupID] = true
		}
		leaders[g.Leader] = true
		conflict = conflict || len(g.Conflicts) > 0
		group := g.GroupID
		if len(group) > 12 {
			group = group[:12]
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%d+%d\t%d\t%d\t%s", r.info.NodeID, orNone(g.Role), orNone(g.Leader), orNone(group),
			len(g.Voters), len(g.NonVoters), g.Filter.Entries, g.AppliedIndex, yesNo(g.Complete)))
		if g.Filter.TimeJumps > 0 || g.TimeSteps > 0 {
			clock = append(clock, fmt.Sprintf("%s (jumps %d, steps %d)", r.info.NodeID, g.Filter.TimeJumps, g.TimeSteps))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nidempotency filter (raft):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tLEADER\tGROUP\tVOTERS+NON-VOTERS\tENTRIES\tAPPLIED\tVOUCHES")
	for _, row := range rows {
		fmt.Fprintln(tw, row)
	}
	_ = tw.Flush()
	switch {
	case conflict || len(groups) > 1:
		fmt.Fprintf(w, "WARNING: more than one raft group among the nodes: retries are only recognised within each group (see the idempotency package doc)\n")
	case forming || len(groups) == 0 || leaders[""] || len(leaders) > 1:
		fmt.Fprintf(w, "the group is forming or electing a leader (retries meanwhile read the command log)\n")
	default:
		fmt.Fprintf(w, "all nodes are in one group with one leader\n")
	}
	if len(clock) > 0 {
		// Counted since each node started.
		fmt.Fprintf(w, "WARNING: the filter's time jumped or ran ahead of the node's clock on %s: a leader's clock is ahead of another's or stepped forward (a step may also be the node applying a batch late, after a pause), so outcomes may have expired early; each time the node checked misses against the command log for a window. Keep the clocks synchronised\n", strings.Join(clock, ", "))
	}
}

// natsSettings are the flags with which the admin subcommands reach a
// cluster: its NATS server, credentials and subject prefix.
func natsSettings(nc *node.NATSConfig, prefix *string) []setting {
	return slices.Concat([]setting{
		{"nats-url", "CONCURSUS_NATS_URL", "NATS server of the cluster", (*stringValue)(&nc.URL)},
	}, natsCredentials(nc), []setting{
		{"prefix", "CONCURSUS_PREFIX", "NATS subject prefix of the cluster", (*stringValue)(prefix)},
	})
}

// natsCredentials are the credential flags of a NATS connection, the
// node's and the admin subcommands' alike (node.NATSConfig.CheckCredentials
// judges them).
func natsCredentials(nc *node.NATSConfig) []setting {
	return []setting{
		{"nats-token", "CONCURSUS_NATS_TOKEN", "token for --nats-url", (*stringValue)(&nc.Token)},
		{"nats-user", "CONCURSUS_NATS_USER", "user for --nats-url (with --nats-password)", (*stringValue)(&nc.User)},
		{"nats-password", "CONCURSUS_NATS_PASSWORD", "password for --nats-user", (*stringValue)(&nc.Password)},
		{"nats-creds", "CONCURSUS_NATS_CREDS", "credentials (.creds) file for --nats-url", (*stringValue)(&nc.CredsFile)},
	}
}
