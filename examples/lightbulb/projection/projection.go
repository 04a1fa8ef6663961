// Package projection is the Concursus paper's index of aggregates by an
// event property, for lightbulbs: which bulbs are screwed in at each
// location, and which of them are on. It is kept from the events stream
// with package subscription and answers queries over NATS, so any client
// can ask "what is in the hall?".
//
// The index lives in memory and is rebuilt from scratch by replay: every
// start (and every Rebuild) subscribes from the beginning of the stream
// under a consumer name of its own, which is deleted when the projection
// stops. The subscription hands each aggregate's events over once, in
// sequence order (it fills gaps from the nodes' history API), so the
// index is the same whichever node published what, and after whatever
// crash.
//
// Queries (JSON request, JSON reply) on <prefix>.projection.lightbulbs.bylocation:
//
//	{}                    → {"ok":true,"locations":[{"location":"hall","bulbs":2,"on":1}, …]}
//	{"location":"hall"}   → {"ok":true,"location":"hall","bulbs":[{"id":"b1","wattage":60,"on":true}, …]}
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
	"github.com/concursus-go/concursus/subscription"
)

// Subjects of the projection's queries.
func QuerySubject(prefix string) string   { return prefix + ".projection.lightbulbs.bylocation" }
func RebuildSubject(prefix string) string { return prefix + ".projection.lightbulbs.rebuild" }

// Query is the body of a query: a location, or none for the list of
// locations.
type Query struct {
	Location string `json:"location,omitempty"`
}

// Reply answers a query.
type Reply struct {
	OK        bool            `json:"ok"`
	Location  string          `json:"location,omitempty"`
	Bulbs     []Bulb          `json:"bulbs,omitempty"`
	Locations []LocationCount `json:"locations,omitempty"`
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

// Index is the projection's state: bulbs by location. Safe for
// concurrent use.
type Index struct {
	mu     sync.RWMutex
	bulbs  map[string]*bulbState // by aggregate id: every bulb known
	at     map[string]map[string]bool
	events int64
}

type bulbState struct {
	wattage  int
	location string // "" when not screwed in
	on       bool
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{bulbs: make(map[string]*bulbState), at: make(map[string]map[string]bool)}
}

func (x *Index) bulb(id string) *bulbState {
	b := x.bulbs[id]
	if b == nil {
		b = &bulbState{}
		x.bulbs[id] = b
	}
	return b
}

func (x *Index) place(id string, b *bulbState, location string) {
	if b.location != "" {
		delete(x.at[b.location], id)
		if len(x.at[b.location]) == 0 {
			delete(x.at, b.location)
		}
	}
	b.location = location
	if location != "" {
		if x.at[location] == nil {
			x.at[location] = make(map[string]bool)
		}
		x.at[location][id] = true
	}
}

// handlers are the index's event handlers.
func (x *Index) handlers() *subscription.Handlers {
	var h subscription.Handlers
	update := func(id string, f func(b *bulbState)) {
		x.mu.Lock()
		defer x.mu.Unlock()
		x.events++
		f(x.bulb(id))
	}
	subscription.On(&h, "created_0", func(_ context.Context, e subscription.Event, p lightbulb.Created) error {
		update(e.AggregateID, func(b *bulbState) { b.wattage = p.Wattage })
		return nil
	})
	subscription.On(&h, "screwedIn_0", func(_ context.Context, e subscription.Event, p lightbulb.ScrewedIn) error {
		update(e.AggregateID, func(b *bulbState) { x.place(e.AggregateID, b, p.Location) })
		return nil
	})
	subscription.On(&h, "unscrewed_0", func(_ context.Context, e subscription.Event, _ lightbulb.Unscrewed) error {
		update(e.AggregateID, func(b *bulbState) { x.place(e.AggregateID, b, ""); b.on = false })
		return nil
	})
	subscription.On(&h, "switchedOn_0", func(_ context.Context, e subscription.Event, _ lightbulb.SwitchedOn) error {
		update(e.AggregateID, func(b *bulbState) { b.on = true })
		return nil
	})
	subscription.On(&h, "switchedOff_0", func(_ context.Context, e subscription.Event, _ lightbulb.SwitchedOff) error {
		update(e.AggregateID, func(b *bulbState) { b.on = false })
		return nil
	})
	subscription.On(&h, "blown_0", func(_ context.Context, e subscription.Event, _ lightbulb.Blown) error {
		// A blown bulb has ended: it leaves the index.
		update(e.AggregateID, func(b *bulbState) {
			x.place(e.AggregateID, b, "")
			delete(x.bulbs, e.AggregateID)
		})
		return nil
	})
	return &h
}

// At lists the bulbs at a location, by id.
func (x *Index) At(location string) []Bulb {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]Bulb, 0, len(x.at[location]))
	for id := range x.at[location] {
		b := x.bulbs[id]
		out = append(out, Bulb{ID: id, Wattage: b.wattage, On: b.on})
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
			if x.bulbs[id].on {
				c.On++
			}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b LocationCount) int { return cmp.Compare(a.Location, b.Location) })
	return out
}

// Events is how many events the index has taken in.
func (x *Index) Events() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.events
}

// Config configures a running projection.
type Config struct {
	// Conn is the NATS connection (not closed by the projection).
	Conn *nats.Conn
	// Prefix is the nodes' subject prefix; default api.DefaultPrefix.
	Prefix string
	// Name is the base of the consumer names; default
	// "lightbulbs-by-location". Each replay adds a random suffix.
	Name   string
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
	cfg := subscription.DefaultConfig()
	cfg.Conn = p.cfg.Conn
	cfg.Prefix = p.cfg.Prefix
	cfg.Name = p.cfg.Name + "-" + hex.EncodeToString(suffix)
	cfg.AggregateType = lightbulb.TypeName
	cfg.Start = subscription.FromBeginning()
	cfg.Logger = p.cfg.Logger
	sub, err := subscription.Subscribe(ctx, cfg, x.handlers())
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
// the stream (its consumer has nothing pending or unacknowledged), or ctx
// ends. A node answers a command once its events are durable in the log
// and publishes them right after, so the events of a command just answered
// may not be in the stream yet: a caller that needs them in the index
// waits for the stream to hold them before calling CaughtUp.
func (p *Projection) CaughtUp(ctx context.Context) error {
	js, err := jetstream.New(p.cfg.Conn)
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, eventbus.StreamName(p.cfg.Prefix))
	if err != nil {
		return fmt.Errorf("projection: %w", err)
	}
	for {
		if sub := p.Subscription(); sub != nil {
			cons, err := st.Consumer(ctx, sub.Durable())
			if err == nil {
				ci, err := cons.Info(ctx)
				if err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 {
					return nil
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
	if q.Location == "" {
		reply.Locations = x.Locations()
	} else {
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
