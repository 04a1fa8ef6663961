package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

// The -facts run: facts are events reported by their sources (an
// installer's app, the wall switch, a sensor), sent to
// <prefix>.facts.lightbulb and stored without a command deciding them.
// The same facts go to two sets of bulbs: once in event-time order, once
// shuffled into random batches, as a sensor network delivers them. Every
// history folds in event time, so both sets end in the same state.

// factsEvening is when the first bulb is installed.
var factsEvening = time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)

// bulbFacts is what the sources report about bulb n (0, 1, 2, …) of the
// run, under aggregate id: three stories, each bulb installed ten minutes
// after the one before.
func bulbFacts(id string, n int) []api.Fact {
	t0 := factsEvening.Add(time.Duration(n) * 10 * time.Minute)
	f := func(m int, stream, event, payload string) api.Fact {
		fact := api.Fact{AggregateID: id, Event: event, Timestamp: t0.Add(time.Duration(m) * time.Minute).Format(time.RFC3339), StreamID: stream}
		if payload != "" {
			fact.Payload = json.RawMessage(payload)
		}
		return fact
	}
	wattage := []int{60, 40, 100}[n%3]
	location := []string{"hall", "kitchen", "porch"}[n%3]
	facts := []api.Fact{
		f(0, "installer", "created_0", fmt.Sprintf(`{"wattage":%d}`, wattage)),
		f(2, "installer", "screwedIn_0", fmt.Sprintf(`{"location":%q}`, location)),
		f(3, "switch", "switchedOn_0", ""),
		f(93, "switch", "switchedOff_0", ""),
	}
	switch n % 3 {
	case 0: // on again, unscrewed, blown: the end of its life
		facts = append(facts,
			f(120, "switch", "switchedOn_0", ""),
			f(150, "switch", "switchedOff_0", ""),
			f(151, "installer", "unscrewed_0", ""),
			f(152, "sensor", "blown_0", ""))
	case 1: // on again, and still on
		facts = append(facts, f(120, "switch", "switchedOn_0", ""))
	case 2: // flicked on and off a few times
		facts = append(facts,
			f(110, "switch", "switchedOn_0", ""),
			f(115, "switch", "switchedOff_0", ""),
			f(130, "switch", "switchedOn_0", ""),
			f(160, "switch", "switchedOff_0", ""))
	}
	return facts
}

// factsDemo is one run: bulbs pairs of bulbs, ordered[i] and shuffled[i]
// with the same facts.
type factsDemo struct {
	nc       *nats.Conn
	prefix   string
	out      io.Writer
	ordered  []string
	shuffled []string
}

func newFactsDemo(nc *nats.Conn, prefix, base string, bulbs int, out io.Writer) *factsDemo {
	d := &factsDemo{nc: nc, prefix: prefix, out: out}
	for i := range bulbs {
		d.ordered = append(d.ordered, fmt.Sprintf("%s-%d-ordered", base, i+1))
		d.shuffled = append(d.shuffled, fmt.Sprintf("%s-%d-shuffled", base, i+1))
	}
	return d
}

// facts returns the facts of every bulb in ids.
func (d *factsDemo) facts(ids []string) []api.Fact {
	var all []api.Fact
	for i, id := range ids {
		all = append(all, bulbFacts(id, i)...)
	}
	return all
}

// run sends the facts both ways, lists both sets and reports whether they
// came out the same.
func (d *factsDemo) run(ctx context.Context, seed uint64) (same bool, err error) {
	last := len(d.ordered) - 1
	fmt.Fprintf(d.out, "%d lightbulbs, the same facts sent twice:\n", len(d.ordered))
	ordered, shuffled := d.ordered[0]+" … "+d.ordered[last], d.shuffled[0]+" … "+d.shuffled[last]
	if last == 0 {
		ordered, shuffled = d.ordered[0], d.shuffled[0]
	}
	fmt.Fprintf(d.out, "  %-*s  in event-time order\n", len(shuffled), ordered)
	fmt.Fprintf(d.out, "  %s  shuffled into random batches (seed %d; -seed %d replays it)\n", shuffled, seed, seed)
	fmt.Fprintf(d.out, "Each bulb's log keeps its facts in arrival order (seq); its state folds them in\n")
	fmt.Fprintf(d.out, "event-time order (timestamp, stream, seq), so both sets must end the same.\n\n")
	if err := d.sendOrdered(ctx); err != nil {
		return false, err
	}
	if err := d.sendShuffled(ctx, seed); err != nil {
		return false, err
	}
	return d.compare(ctx)
}

// sendOrdered sends every fact in event-time order, in one request.
func (d *factsDemo) sendOrdered(ctx context.Context) error {
	facts := d.facts(d.ordered)
	slices.SortStableFunc(facts, func(a, b api.Fact) int {
		return strings.Compare(a.Timestamp, b.Timestamp) // same format and zone: the text sorts as the time
	})
	res, err := d.send(ctx, facts)
	if err != nil {
		return fmt.Errorf("in order: %w", err)
	}
	fmt.Fprintf(d.out, "> in event-time order: %d facts in one request: %s\n\n", len(facts), tally(res))
	return nil
}

// sendShuffled sends every fact in a random order, in random batches of
// one to five facts, and shows how each was taken.
func (d *factsDemo) sendShuffled(ctx context.Context, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x11b))
	facts := d.facts(d.shuffled)
	rng.Shuffle(len(facts), func(i, j int) { facts[i], facts[j] = facts[j], facts[i] })
	fmt.Fprintf(d.out, "> shuffled: %d facts in random batches\n", len(facts))
	var all []api.FactResult
	for b := 1; len(facts) > 0; b++ {
		batch := facts[:min(len(facts), 1+rng.IntN(5))]
		facts = facts[len(batch):]
		res, err := d.send(ctx, batch)
		if err != nil {
			return fmt.Errorf("shuffled batch %d: %w", b, err)
		}
		fmt.Fprintf(d.out, "  batch %d\n", b)
		for i, f := range batch {
			fmt.Fprintf(d.out, "    %-22s %-14s %s  %-9s → seq %d, %s\n", f.AggregateID, f.Event, clock(f.Timestamp), f.StreamID, res[i].Sequence, how(res[i]))
		}
		all = append(all, res...)
	}
	fmt.Fprintf(d.out, "  %s\n\n", tally(all))
	return nil
}

// send sends one facts request and returns its results, each checked.
func (d *factsDemo) send(ctx context.Context, facts []api.Fact) ([]api.FactResult, error) {
	var reply api.FactsReply
	if err := d.request(ctx, api.FactsSubject(d.prefix, lightbulb.TypeName), api.FactsRequest{Facts: facts}, &reply); err != nil {
		return nil, err
	}
	if reply.Error != nil {
		return nil, reply.Error
	}
	if len(reply.Results) != len(facts) {
		return nil, fmt.Errorf("%d facts answered %d times", len(facts), len(reply.Results))
	}
	for i, r := range reply.Results {
		if !r.OK {
			return nil, fmt.Errorf("%s %s at %s: %v", facts[i].AggregateID, facts[i].Event, facts[i].Timestamp, r.Error)
		}
	}
	return reply.Results, nil
}

// how says how one fact was taken.
func how(r api.FactResult) string {
	switch {
	case r.Duplicate:
		return "duplicate (sent before), stored once"
	case r.Place == "waiting" && r.Late:
		return "late, waiting for created_0"
	case r.Place == "waiting":
		return "waiting for created_0"
	case r.Place != "applied":
		return r.Place
	case r.Late:
		return "late: state refolded in event time"
	}
	return "applied"
}

// tally counts how the facts were taken.
func tally(res []api.FactResult) string {
	var late, waiting, dup int
	for _, r := range res {
		if r.Late {
			late++
		}
		if r.Place == "waiting" {
			waiting++
		}
		if r.Duplicate {
			dup++
		}
	}
	s := fmt.Sprintf("%d stored, %d late, %d waiting for their created_0 on arrival", len(res)-dup, late, waiting)
	if dup > 0 {
		s += fmt.Sprintf(", %d duplicates (sent in an earlier run)", dup)
	}
	return s
}

// bulbView is what is compared between the two bulbs of a pair.
type bulbView struct {
	history      []model.Event // in event time
	state, usage api.QueryReply
}

// compare lists each pair's history in event time with both bulbs' log
// sequences, their state and usage, and says whether they are the same.
func (d *factsDemo) compare(ctx context.Context) (bool, error) {
	allSame := true
	for i := range d.ordered {
		var v [2]bulbView
		for k, id := range []string{d.ordered[i], d.shuffled[i]} {
			var err error
			if v[k], err = d.read(ctx, id); err != nil {
				return false, err
			}
		}
		fmt.Fprintf(d.out, "bulb %d: %s and %s, history in event time, with each one's log sequence\n", i+1, d.ordered[i], d.shuffled[i])
		same := d.listHistories(v[0].history, v[1].history)
		for _, q := range []struct {
			name string
			a, b api.QueryReply
		}{{"state", v[0].state, v[1].state}, {"usage", v[0].usage, v[1].usage}} {
			eq := q.a.Exists == q.b.Exists && bytes.Equal(q.a.State, q.b.State) && samePrefix(q.a.Prefix, q.b.Prefix)
			same = same && eq
			fmt.Fprintf(d.out, "  %-5s ordered  %s\n", q.name, describe(q.name, q.a))
			if eq {
				fmt.Fprintf(d.out, "        shuffled the same\n")
			} else {
				fmt.Fprintf(d.out, "        shuffled %s   <- DIFFERENT\n", describe(q.name, q.b))
			}
		}
		fmt.Fprintln(d.out)
		allSame = allSame && same
	}
	fmt.Fprintf(d.out, "same state and usage: %s\n", map[bool]string{true: "yes", false: "NO"}[allSame])
	return allSame, nil
}

// listHistories prints two histories side by side in event time and
// reports whether they hold the same events (time, stream, name, payload).
func (d *factsDemo) listHistories(a, b []model.Event) bool {
	same := len(a) == len(b)
	fmt.Fprintf(d.out, "  %-19s  %-9s  %-14s %-22s %8s %8s\n", "event time", "stream", "event", "payload", "ordered", "shuffled")
	for j := range max(len(a), len(b)) {
		var e model.Event
		seqs := [2]string{"-", "-"}
		if j < len(a) {
			e, seqs[0] = a[j], fmt.Sprint(a[j].Sequence)
		}
		if j < len(b) {
			if j >= len(a) {
				e = b[j]
			}
			seqs[1] = fmt.Sprint(b[j].Sequence)
		}
		mark := ""
		if j >= len(a) || j >= len(b) || !sameEvent(a[j], b[j]) {
			same, mark = false, "   <- DIFFERENT"
		}
		fmt.Fprintf(d.out, "  %s  %-9s  %-14s %-22s %8s %8s%s\n", e.Timestamp.UTC().Format("2006-01-02 15:04:05"), e.StreamID, e.VersionedName(), e.Payload, seqs[0], seqs[1], mark)
	}
	return same
}

func sameEvent(a, b model.Event) bool {
	return a.Timestamp.Equal(b.Timestamp) && a.StreamID == b.StreamID && a.VersionedName() == b.VersionedName() && bytes.Equal(a.Payload, b.Payload)
}

func samePrefix(a, b *api.QueryPrefix) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Events == b.Events && a.Waiting == b.Waiting &&
		(a.LastTimestamp == nil) == (b.LastTimestamp == nil) && (a.LastTimestamp == nil || a.LastTimestamp.Equal(*b.LastTimestamp))
}

// describe renders a state or usage reply for a reader.
func describe(view string, r api.QueryReply) string {
	if !r.Exists {
		return "(no bulb)"
	}
	var s string
	switch view {
	case "usage":
		var u lightbulb.Usage
		if err := json.Unmarshal(r.State, &u); err != nil {
			return fmt.Sprintf("%s (unreadable: %v)", r.State, err)
		}
		s = fmt.Sprintf("switched on %d times, on for %s", u.Switches, time.Duration(u.OnMillis)*time.Millisecond)
		if u.OnSince != nil {
			s += ", on since " + u.OnSince.UTC().Format("15:04")
		}
	default:
		var b lightbulb.Bulb
		if err := json.Unmarshal(r.State, &b); err != nil {
			return fmt.Sprintf("%s (unreadable: %v)", r.State, err)
		}
		s = fmt.Sprintf("%+v", b)
	}
	if p := r.Prefix; p != nil {
		s += fmt.Sprintf("  (%d events folded", p.Events)
		if p.LastTimestamp != nil {
			s += ", the last at " + p.LastTimestamp.UTC().Format("15:04")
		}
		if p.Waiting > 0 {
			s += fmt.Sprintf(", %d waiting", p.Waiting)
		}
		s += ")"
	}
	return s
}

// read reads a bulb's whole history from <prefix>.history.lightbulb (log
// order, page by page), sorts it into event time (timestamp, stream,
// sequence), and queries its state and usage.
func (d *factsDemo) read(ctx context.Context, id string) (bulbView, error) {
	var v bulbView
	for from := uint64(1); from != 0; {
		var h api.HistoryReply
		if err := d.request(ctx, api.HistorySubject(d.prefix, lightbulb.TypeName), api.HistoryRequest{AggregateID: id, From: from}, &h); err != nil {
			return v, fmt.Errorf("history of %s: %w", id, err)
		}
		if h.Error != nil {
			return v, fmt.Errorf("history of %s: %w", id, h.Error)
		}
		v.history = append(v.history, h.Events...)
		from = h.Next
	}
	slices.SortFunc(v.history, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
	for _, q := range []struct {
		view string
		into *api.QueryReply
	}{{"", &v.state}, {"usage", &v.usage}} {
		if err := d.request(ctx, api.QuerySubject(d.prefix, lightbulb.TypeName), api.Query{AggregateID: id, View: q.view}, q.into); err != nil {
			return v, fmt.Errorf("querying %s: %w", id, err)
		}
		if q.into.Error != nil {
			return v, fmt.Errorf("querying %s: %w", id, q.into.Error)
		}
	}
	return v, nil
}

// request sends req as JSON and decodes the reply into reply.
func (d *factsDemo) request(ctx context.Context, subject string, req, reply any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := d.nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if err := json.Unmarshal(m.Data, reply); err != nil {
		return fmt.Errorf("%s: reply is not JSON: %w: %.200s", subject, err, m.Data)
	}
	return nil
}

// clock shows an RFC 3339 timestamp's time of day.
func clock(ts string) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return ts
	}
	return t.UTC().Format("15:04")
}
