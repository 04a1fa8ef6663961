// Package projection is the Concursus paper's index of aggregates by an
// event property, for lightbulbs: which bulbs are screwed in at each
// location, and which of them are on. It is kept from the events stream
// with package subscription and answers queries over NATS, so any client
// can ask "what is in the hall?".
//
// It also keeps the usage of each bulb (how long it was switched on).
//
// The index lives in memory and is rebuilt from scratch by replay: every
// start (and every Rebuild) subscribes from the beginning of the stream
// under a consumer name of its own, which is deleted when the projection
// stops. The subscription hands each aggregate's events over once (it
// fills gaps from the nodes' history API), in event-time order after a
// settle window (subscription.EventTime), and events stamped before ones
// already handed over come late. The index folds each bulb in event-time
// order and folds it again on a late event (see Index), so it is the same
// whichever node published what, in whatever order the events arrived,
// and after whatever crash. The settle window only makes the refolds
// rare and the answers given meanwhile follow event time.
//
// Queries (JSON request, JSON reply) on <prefix>.projection.lightbulbs.bylocation:
//
//	{}                    → {"ok":true,"locations":[{"location":"hall","bulbs":2,"on":1}, …]}
//	{"location":"hall"}   → {"ok":true,"location":"hall","bulbs":[{"id":"b1","wattage":60,"on":true}, …]}
//	{"usage":"b1"}        → {"ok":true,"usage":{"onMillis":60000,"switches":2,"onSince":"…"}}
//
// and on <prefix>.projection.lightbulbs.rebuild (any body) the index is
// dropped and replayed; the reply comes when the replay is done.
package projection

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/subscription"
)

// Subjects of the projection's queries.
func QuerySubject(prefix string) string   { return prefix + ".projection.lightbulbs.bylocation" }
func RebuildSubject(prefix string) string { return prefix + ".projection.lightbulbs.rebuild" }

// Query is the body of a query: a location, or none for the list of
// locations.
type Query struct {
	Location string `json:"location,omitempty"`
	// Usage asks for the usage of a bulb, by id.
	Usage string `json:"usage,omitempty"`
}

// Reply answers a query.
type Reply struct {
	OK        bool            `json:"ok"`
	Location  string          `json:"location,omitempty"`
	Bulbs     []Bulb          `json:"bulbs,omitempty"`
	Locations []LocationCount `json:"locations,omitempty"`
	// Usage answers a usage query; absent for a bulb the index does not
	// know.
	Usage *lightbulb.Usage `json:"usage,omitempty"`
	// Events is how many events the index has taken in.
	Events int64  `json:"events"`
	Error  string `json:"error,omitempty"`
}

// Bulb is one bulb at a location.
type Bulb struct {
	ID      string `json:"id"`
	Wattage int    `json:"wattage"`
	On      bool   `json:"on"`
}

// LocationCount summarises one location.
type LocationCount struct {
	Location string `json:"location"`
	Bulbs    int    `json:"bulbs"`
	On       int    `json:"on"`
}

// Index is the projection's state: bulbs by location, and how long each
// was switched on. Safe for concurrent use.
//
// Each bulb's entry is the fold of its events in event-time order
// (model.TimeKey), with the lifecycle in event time as the nodes fold it
// (see lightbulb.Define): the bulb exists from its earliest created event
// and ends with its earliest blown event; events stamped outside that
// life are kept but not applied. An event stamped after everything taken
// in for its bulb is applied at once; a late one is put where it belongs
// and the bulb is folded again from its first event. So the index depends
// only on the set of events taken in, never on the order they arrived in
// (DESIGN.md, invariant 7), and a late switchedOff stamped between two
// switchedOn events counts its span where it belongs instead of giving a
// negative one.
//
// To refold, the index keeps every bulb's events (a small record each).
// A long-lived index would keep only a horizon of them and resynchronise
// a bulb from the nodes' history on an event later than that; the example
// keeps them all.
type Index struct {
	mu     sync.RWMutex
	bulbs  map[string]*bulbEntry // by aggregate id: every bulb with events
	at     map[string]map[string]bool
	events int64
	late   int64
}

// bulbEntry is one bulb: its events in event-time order and their fold.
type bulbEntry struct {
	history []record
	state   bulbState
	placed  string // the location it is filed under in Index.at
}

// record is what the index keeps of an event.
type record struct {
	key      model.TimeKey
	name     string // versioned name
	wattage  int
	location string
}

// bulbState is the fold of a bulb's records: the domain's state and usage
// views, and where the bulb is in its life.
type bulbState struct {
	exists, ended bool
	bulb          lightbulb.Bulb
	usage         lightbulb.Usage
}

// apply folds the next record in event-time order. It mirrors the state
// and usage views of lightbulb.Define.
func (s *bulbState) apply(r *record) {
	switch {
	case s.ended:
		return // after the terminal event: kept, not applied
	case !s.exists:
		if r.name == "created_0" {
			s.exists, s.bulb.Wattage = true, r.wattage
		}
		return // before the initial event: waiting
	}
	stop := func() {
		if s.usage.OnSince != nil {
			// Records come in event-time order: the span is never
			// negative.
			s.usage.OnMillis += r.key.Timestamp.Sub(*s.usage.OnSince).Milliseconds()
			s.usage.OnSince = nil
		}
	}
	switch r.name {
	case "screwedIn_0":
		s.bulb.ScrewedIn, s.bulb.Location = true, r.location
	case "unscrewed_0":
		s.bulb.ScrewedIn, s.bulb.Location = false, ""
		stop()
	case "switchedOn_0":
		s.bulb.On = true
		ts := r.key.Timestamp
		s.usage.OnSince = &ts
		s.usage.Switches++
	case "switchedOff_0":
		s.bulb.On = false
		stop()
	case "blown_0":
		s.bulb.Blown, s.bulb.On = true, false
		stop()
		s.ended = true
	}
	// created_0 again: a second initial event, not applied.
}

// take adds an event to its bulb's entry and the location index. An event
// already taken in (the same place in event time) changes nothing.
func (x *Index) take(id string, r record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.bulbs[id]
	if b == nil {
		b = &bulbEntry{}
		x.bulbs[id] = b
	}
	i, found := slices.BinarySearchFunc(b.history, r.key, func(h record, k model.TimeKey) int { return h.key.Compare(k) })
	if found {
		return
	}
	x.events++
	b.history = slices.Insert(b.history, i, r)
	if i == len(b.history)-1 {
		b.state.apply(&b.history[i])
	} else {
		// Late: stamped before an event already taken in. Fold again.
		x.late++
		b.state = bulbState{}
		for j := range b.history {
			b.state.apply(&b.history[j])
		}
	}
	location := ""
	if b.state.exists && !b.state.ended {
		location = b.state.bulb.Location
	}
	x.place(id, b, location)
}

// place files bulb id under location ("" for none).
func (x *Index) place(id string, b *bulbEntry, location string) {
	if b.placed == location {
		return
	}
	if b.placed != "" {
		delete(x.at[b.placed], id)
		if len(x.at[b.placed]) == 0 {
			delete(x.at, b.placed)
		}
	}
	b.placed = location
	if location != "" {
		if x.at[location] == nil {
			x.at[location] = make(map[string]bool)
		}
		x.at[location][id] = true
	}
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{bulbs: make(map[string]*bulbEntry), at: make(map[string]map[string]bool)}
}

// eventNames are the lightbulb events the index takes in.
var eventNames = []string{"created_0", "screwedIn_0", "unscrewed_0", "switchedOn_0", "switchedOff_0", "blown_0"}

// handlers are the index's event handlers.
func (x *Index) handlers() *subscription.Handlers {
	var h subscription.Handlers
	for _, name := range eventNames {
		h.OnEvent(name, func(_ context.Context, e subscription.Event) error { return x.Take(&e.Event) })
	}
	return &h
}

// Take adds a lightbulb event to the index, in whatever order the events
// come; an event taken in already (the same bulb and place in event time)
// changes nothing. A payload that does not decode is a permanent error
// (subscription.Permanent): the subscription puts the event in the dead
// letters. Events of other types or names are ignored.
func (x *Index) Take(e *model.Event) error {
	if e.AggregateType != lightbulb.TypeName {
		return nil
	}
	r := record{key: e.TimeKey(), name: e.VersionedName().String()}
	var err error
	switch r.name {
	case "created_0":
		var p lightbulb.Created
		err = json.Unmarshal(e.Payload, &p)
		r.wattage = p.Wattage
	case "screwedIn_0":
		var p lightbulb.ScrewedIn
		err = json.Unmarshal(e.Payload, &p)
		r.location = p.Location
	case "unscrewed_0", "switchedOn_0", "switchedOff_0", "blown_0":
	default:
		return nil
	}
	if err != nil {
		return subscription.Permanent(fmt.Errorf("projection: %s of %s: %w", r.name, e.Ref(), err))
	}
	x.take(e.AggregateID, r)
	return nil
}

// At lists the bulbs at a location, by id.
func (x *Index) At(location string) []Bulb {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]Bulb, 0, len(x.at[location]))
	for id := range x.at[location] {
		b := x.bulbs[id].state.bulb
		out = append(out, Bulb{ID: id, Wattage: b.Wattage, On: b.On})
	}
	slices.SortFunc(out, func(a, b Bulb) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Locations lists every location with bulbs, by name.
func (x *Index) Locations() []LocationCount {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]LocationCount, 0, len(x.at))
	for loc, ids := range x.at {
		c := LocationCount{Location: loc, Bulbs: len(ids)}
		for id := range ids {
			if x.bulbs[id].state.bulb.On {
				c.On++
			}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b LocationCount) int { return cmp.Compare(a.Location, b.Location) })
	return out
}

// Usage is how long bulb id was switched on, from the events taken in:
// the usage view of lightbulb.Define folded in event-time order (a blown
// bulb keeps its final usage). ok is false for a bulb whose created event
// has not been taken in.
func (x *Index) Usage(id string) (u lightbulb.Usage, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	b := x.bulbs[id]
	if b == nil || !b.state.exists {
		return lightbulb.Usage{}, false
	}
	u = b.state.usage
	if u.OnSince != nil {
		since := *u.OnSince
		u.OnSince = &since
	}
	return u, true
}

// Events is how many events the index has taken in.
func (x *Index) Events() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.events
}

// Late is how many of them were stamped before an event of their bulb
// taken in earlier, so that the bulb was folded again.
func (x *Index) Late() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.late
}

// Config configures a running projection.
type Config struct {
	// Conn is the NATS connection (not closed by the projection).
	Conn *nats.Conn
	// Prefix is the nodes' subject prefix; default api.DefaultPrefix.
	Prefix string
	// Name is the base of the consumer names; default
	// "lightbulbs-by-location". Each replay adds a random suffix.
	Name string
	// SettleWindow is the subscription's settle window (see
	// subscription.Config); default subscription.DefaultSettleWindow.
	// The index is the same with any window.
	SettleWindow time.Duration
	// Clock is the subscription's clock; default the system clock.
	Clock  subscription.Clock
	Logger *slog.Logger
}

// Projection is a running index: subscribed to the events stream and
// answering queries.
type Projection struct {
	cfg   Config
	mu    sync.Mutex // serialises Rebuild and Stop
	index *Index
	sub   *subscription.Subscription
	subs  []*nats.Subscription
}

// Start replays the events stream from the beginning into a fresh index
// and serves queries. The stream must exist (nodes run with --stream).
func Start(ctx context.Context, cfg Config) (*Projection, error) {
	if cfg.Conn == nil {
		return nil, errors.New("projection: a NATS connection is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = api.DefaultPrefix
	}
	if cfg.Name == "" {
		cfg.Name = "lightbulbs-by-location"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Projection{cfg: cfg}
	if err := p.replay(ctx); err != nil {
		return nil, err
	}
	for subject, h := range map[string]nats.MsgHandler{QuerySubject(cfg.Prefix): p.onQuery, RebuildSubject(cfg.Prefix): p.onRebuild} {
		s, err := cfg.Conn.Subscribe(subject, h)
		if err != nil {
			p.Stop()
			return nil, fmt.Errorf("projection: %w", err)
		}
		p.subs = append(p.subs, s)
	}
	return p, nil
}

// replay subscribes a fresh index from the beginning of the stream.
func (p *Projection) replay(ctx context.Context) error {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	x := NewIndex()
	sub, err := subscription.Subscribe(ctx, subscription.Config{
		Conn:          p.cfg.Conn,
		Prefix:        p.cfg.Prefix,
		Name:          p.cfg.Name + "-" + hex.EncodeToString(suffix),
		AggregateType: lightbulb.TypeName,
		Start:         subscription.FromBeginning(),
		Order:         subscription.EventTime,
		SettleWindow:  p.cfg.SettleWindow,
		Clock:         p.cfg.Clock,
		Logger:        p.cfg.Logger,
	}, x.handlers())
	if err != nil {
		return fmt.Errorf("projection: %w", err)
	}
	p.index, p.sub = x, sub
	return nil
}

// Index returns the current index.
func (p *Projection) Index() *Index {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.index
}

// Subscription returns the current subscription (for its stats).
func (p *Projection) Subscription() *subscription.Subscription {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sub
}

// CaughtUp waits until the index has taken in every lightbulb event in
// the stream at the time of the call (its consumer has delivered the last
// of them, and has nothing pending or unacknowledged), or ctx ends. A
// node answers a command once its events are durable in the log and
// publishes them right after, so the events of a command just answered
// may not be in the stream yet: a caller that needs them in the index
// waits for the stream to hold them before calling CaughtUp.
//
// The consumer's pending count alone is not enough: the server updates it
// after it stores a message, so right after a publish it can still say 0
// while the new event is neither delivered nor pending.
func (p *Projection) CaughtUp(ctx context.Context) error {
	js, err := jetstream.New(p.cfg.Conn)
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, eventbus.StreamName(p.cfg.Prefix))
	if err != nil {
		return fmt.Errorf("projection: %w", err)
	}
	var last uint64 // stream sequence of the last event the consumer takes at the call
	known := false
	for {
		if sub := p.Subscription(); sub != nil {
			if cons, err := st.Consumer(ctx, sub.Durable()); err == nil {
				if ci, err := cons.Info(ctx); err == nil {
					if !known {
						if last, err = lastOf(ctx, st, ci.Config); err != nil {
							return err
						}
						known = true
					}
					if ci.NumPending == 0 && ci.NumAckPending == 0 && ci.Delivered.Stream >= last {
						return nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lastOf returns the stream sequence of the last message in st that the
// consumer configured by cfg takes (0 when there is none).
func lastOf(ctx context.Context, st jetstream.Stream, cfg jetstream.ConsumerConfig) (uint64, error) {
	filters := slices.Clone(cfg.FilterSubjects)
	if cfg.FilterSubject != "" {
		filters = append(filters, cfg.FilterSubject)
	}
	if len(filters) == 0 {
		info, err := st.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("projection: %w", err)
		}
		return info.State.LastSeq, nil
	}
	var last uint64
	for _, f := range filters {
		m, err := st.GetLastMsgForSubject(ctx, f)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return 0, fmt.Errorf("projection: the last event on %s: %w", f, err)
		default:
			last = max(last, m.Sequence)
		}
	}
	return last, nil
}

// Rebuild drops the index and replays the stream from the beginning into
// a new one, which replaces the old once it has caught up.
func (p *Projection) Rebuild(ctx context.Context) error {
	p.mu.Lock()
	old := p.sub
	oldIndex := p.index
	if err := p.replay(ctx); err != nil {
		p.mu.Unlock()
		return err
	}
	p.mu.Unlock()
	err := p.CaughtUp(ctx)
	p.retire(old)
	if err != nil {
		return err
	}
	p.cfg.Logger.Info("projection rebuilt", "events", p.Index().Events(), "before", oldIndex.Events())
	return nil
}

// retire stops a subscription and deletes its consumers.
func (p *Projection) retire(sub *subscription.Subscription) {
	if sub == nil {
		return
	}
	sub.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sub.Delete(ctx); err != nil {
		p.cfg.Logger.Warn("projection: deleting a retired consumer", "consumer", sub.Durable(), "err", err)
	}
}

// Stop stops answering queries and deletes the projection's consumer.
func (p *Projection) Stop() {
	for _, s := range p.subs {
		_ = s.Unsubscribe()
	}
	p.mu.Lock()
	sub := p.sub
	p.sub = nil
	p.mu.Unlock()
	p.retire(sub)
}

func (p *Projection) onQuery(m *nats.Msg) {
	var q Query
	reply := Reply{OK: true}
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &q); err != nil {
			p.respond(m, Reply{Error: "invalid_request: " + err.Error()})
			return
		}
	}
	x := p.Index()
	reply.Events = x.Events()
	switch {
	case q.Usage != "":
		if u, ok := x.Usage(q.Usage); ok {
			reply.Usage = &u
		}
	case q.Location == "":
		reply.Locations = x.Locations()
	default:
		reply.Location, reply.Bulbs = q.Location, x.At(q.Location)
	}
	p.respond(m, reply)
}

func (p *Projection) onRebuild(m *nats.Msg) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := p.Rebuild(ctx); err != nil {
			p.respond(m, Reply{Error: "unavailable: " + err.Error()})
			return
		}
		p.respond(m, Reply{OK: true, Events: p.Index().Events()})
	}()
}

func (p *Projection) respond(m *nats.Msg, r Reply) {
	if m.Reply == "" {
		return
	}
	data, err := json.Marshal(r)
	if err != nil {
		data = []byte(`{"ok":false,"error":"reply could not be encoded"}`)
	}
	_ = m.Respond(data)
}
