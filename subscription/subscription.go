package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// publishTimeout bounds one dead-letter publication (a JetStream
// round trip); a slower one is retried after Config.Backoff.
const publishTimeout = 5 * time.Second

// Stats counts what a subscription did since Subscribe.
type Stats struct {
	// Delivered counts the messages the events stream delivered,
	// redeliveries included.
	Delivered uint64 `json:"delivered"`
	// Handled counts the events a handler accepted, from the stream, from
	// history and from replays.
	Handled uint64 `json:"handled"`
	// Duplicates counts the events dropped because their aggregate's
	// sequence had been handled already.
	Duplicates uint64 `json:"duplicates"`
	// GapsFilled counts the gaps closed from the history API, GapEvents
	// the events read for them.
	GapsFilled uint64 `json:"gapsFilled"`
	GapEvents  uint64 `json:"gapEvents"`
	// GapsSkipped counts the gaps given up on after Config.GapTimeout.
	GapsSkipped uint64 `json:"gapsSkipped"`
	// Retries counts the handler calls after an event's first.
	Retries uint64 `json:"retries"`
	// DeadLettered counts the events put in the dead letters.
	DeadLettered uint64 `json:"deadLettered"`
	// SkippedNoHandler counts the events acknowledged without a handler.
	SkippedNoHandler uint64 `json:"skippedNoHandler"`
	// AckedNotMine counts the events acknowledged unhandled because their
	// aggregate belongs to another group member.
	AckedNotMine uint64 `json:"ackedNotMine"`
	// Replayed counts the replayed dead letters received.
	Replayed uint64 `json:"replayed"`
	// Malformed counts the messages that were not events of the type;
	// they go to the dead letters without a handler call.
	Malformed uint64 `json:"malformed"`
	// Tracked is the number of aggregates in the dedup table.
	Tracked uint64 `json:"tracked"`
	// Resyncs counts the resets of the consumer to its ack floor after
	// the connection came back (see "Reconnects" in the package doc).
	Resyncs uint64 `json:"resyncs"`
	// ResumeLookups counts the aggregates a resumed subscription looked
	// up in the stream before taking their first event (see "Restarts" in
	// the package doc); ResumeLookupsFailed those it could not, and took
	// as they came.
	ResumeLookups       uint64 `json:"resumeLookups"`
	ResumeLookupsFailed uint64 `json:"resumeLookupsFailed"`

	// The event-time order (Config.Order EventTime); zero in log order.
	//
	// Held is the number of events held now, waiting for their settle
	// window (a gauge, not a counter).
	Held uint64 `json:"held"`
	// Released counts the events the event-time order handed to the
	// handlers: after their window, before it (HeldOverflow, or along
	// with a later-stamped event of their aggregate whose window passed),
	// or at once because they were late.
	Released uint64 `json:"released"`
	// Late counts the events handed over marked late (Event.Late).
	Late uint64 `json:"late"`
	// HeldOverflow counts the events released before their window passed
	// because more than Config.MaxHeld were held.
	HeldOverflow uint64 `json:"heldOverflow"`
}

type counters struct {
	delivered, handled, duplicates, gapsFilled, gapEvents, gapsSkipped, retries,
	deadLettered, skippedNoHandler, notMine, replayed, malformed, tracked, resyncs,
	resumeLookups, resumeLookupsFailed,
	held, released, late, heldOverflow atomic.Uint64
}

// Subscription consumes one aggregate type's events from the events
// stream and hands them, in order and without duplicates, to its
// handlers. See the package documentation. Its methods are safe for
// concurrent use.
type Subscription struct {
	cfg      Config
	durable  string
	js       jetstream.JetStream
	stream   jetstream.Stream // the events stream
	events   jetstream.Consumer
	dlq      jetstream.Stream
	handlers *Handlers
	wanted   map[string]bool // nil: every event of the type
	log      *slog.Logger

	// tracker and lastAcked (the stream sequence of the last event
	// acknowledged) are owned by the worker goroutine; Stop and Drain read
	// lastAcked after it is gone.
	tracker   *tracker
	lastAcked uint64
	// resumeFloor is the ack floor a resumed consumer started from (0: it
	// was created now, or its aggregates cannot be looked up): an
	// aggregate not in the tracker is looked up at or below it before its
	// first event is taken (resume.go). Owned by the worker goroutine.
	resumeFloor uint64
	// lookups receives the answers to the lookups, on lookupInbox.<n>
	// for the n-th; made at the first, unsubscribed when the worker ends.
	lookups     *nats.Subscription
	lookupInbox string
	lookupSeq   uint64

	// order is the event-time order (nil in log order), owned by the
	// worker goroutine like tracker; nextTouch is when a held event's
	// messages next need a keep-alive (touchArmed: some do), and
	// unackedLow the lowest stream sequence of an event released but
	// left unhandled by a stop (for settleAcks).
	order      *orderer
	nextTouch  time.Time
	touchArmed bool
	unackedLow uint64

	// work carries the messages from the two pullers to the worker, in the
	// order each puller received them. It is closed once both pullers are
	// gone; the worker takes everything it carries (handling it, or once
	// stopping leaving it unacknowledged) so that no puller blocks.
	work     chan item
	stopping chan struct{} // closed by beginStop
	stopOnce sync.Once
	settled  sync.Once       // settleAcks runs once
	ctx      context.Context // the handlers'; cancelled by Stop
	cancel   context.CancelFunc
	iters    []jetstream.MessagesContext
	statuses chan nats.Status // the connection's reconnections; closed by beginStop
	done     chan struct{}    // closed when every goroutine is gone

	mu struct {
		sync.Mutex
		err error // the error that stopped the subscription, if any
	}
	c counters
}

// item is one delivered message.
type item struct {
	msg    jetstream.Msg
	replay bool
}

// delivery is one event on its way to a handler, with what a dead letter
// of it needs.
type delivery struct {
	event Event // AggregateID empty: the message is not an event
	// body and header are the message as delivered (unused for an event
	// read from history: rebuilt as the nodes would publish it).
	body   []byte
	header nats.Header
	// subject is the events subject it was (or would have been)
	// published on; streamSeq its sequence in the events stream.
	subject   string
	streamSeq uint64
	// msgID identifies its dead letter, so that a dead letter published
	// again (after a crash) is stored once.
	msgID string
}

// Subscribe creates (or resumes) the durable consumer of cfg and starts
// handing events to h. ctx bounds the setup only: the subscription runs
// until Stop or Drain, or until the connection or its consumer is lost
// (then Done is closed and Err says why).
//
// It fails with ErrInvalidConfig or ErrInvalidHandlers for bad input,
// ErrNoStream when the events stream does not exist,
// api.ErrNoJetStream without JetStream, and a wrapped JetStream
// error when a consumer cannot be created or updated.
func Subscribe(ctx context.Context, cfg Config, h *Handlers) (*Subscription, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	handlers, err := h.snapshot(cfg.Events)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("subscription: %w", err)
	}
	events, err := js.Stream(ctx, cfg.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("%w: no stream %s (run the nodes with a stream: cmd/node --stream, node.Config.Stream)", ErrNoStream, cfg.Stream)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return nil, api.ErrNoJetStream
	case err != nil:
		return nil, fmt.Errorf("subscription: opening stream %s: %w", cfg.Stream, err)
	}
	dlqName, err := EnsureDeadLetterStream(ctx, cfg.Conn, cfg.Prefix)
	if err != nil {
		return nil, err
	}
	dlq, err := js.Stream(ctx, dlqName)
	if err != nil {
		return nil, fmt.Errorf("subscription: opening stream %s: %w", dlqName, err)
	}

	s := &Subscription{
		cfg:      cfg,
		durable:  cfg.durable(),
		js:       js,
		dlq:      dlq,
		handlers: handlers,
		work:     make(chan item),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.log = cfg.Logger.With("subscription", s.durable, "aggregateType", cfg.AggregateType)
	if len(cfg.Events) > 0 {
		s.wanted = make(map[string]bool, len(cfg.Events))
		for _, e := range cfg.Events {
			s.wanted[e] = true
		}
	}

	cons, created, err := ensureConsumer(ctx, events, jetstream.ConsumerConfig{
		Durable:        s.durable,
		Description:    fmt.Sprintf("Concursus subscription %s to %s events", cfg.Name, cfg.AggregateType),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  cfg.MaxAckPending,
		FilterSubjects: cfg.filterSubjects(),
	}, cfg.Start)
	if err != nil {
		return nil, fmt.Errorf("subscription: consumer %s on %s: %w", s.durable, cfg.Stream, err)
	}
	s.stream, s.events = events, cons
	if !created {
		// Whatever the consumer delivered and was not acknowledged (a
		// crash, a stop with events in hand) would come back after
		// AckWait, behind newer events: an aggregate's older event would
		// then look like a duplicate. Back to the ack floor, everything
		// unacknowledged comes again in stream order.
		r, err := events.ResetConsumer(ctx, s.durable)
		if err != nil {
			s.log.Warn("cannot reset the consumer to its ack floor: events left unacknowledged by a previous run come back after AckWait, out of order, and an aggregate's older event may be taken for a duplicate",
				"consumer", s.durable, "err", err)
			s.resumeFloor = cons.CachedInfo().AckFloor.Stream
		} else {
			s.resumeFloor = r.AckFloor.Stream
		}
	}
	replays, _, err := ensureConsumer(ctx, dlq, jetstream.ConsumerConfig{
		Durable:        cfg.replayDurable(),
		Description:    fmt.Sprintf("Concursus replays of subscription %s", cfg.Name),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  cfg.MaxAckPending,
		FilterSubjects: []string{ReplaySubject(cfg.Prefix, cfg.Name)},
	}, FromBeginning())
	if err != nil {
		return nil, fmt.Errorf("subscription: consumer %s on %s: %w", cfg.replayDurable(), dlqName, err)
	}
	// Only a consumer created now from the beginning knows that an
	// aggregate it has not seen starts at sequence 1.
	s.tracker = newTracker(created && cfg.Start.kind == startBeginning)
	if cfg.Order == EventTime {
		// Whoever knows nothing of what was handed over before (see
		// tracker.expectFirst) trusts the node's late mark.
		s.order = newOrderer(cfg.SettleWindow, cfg.MaxHeld, !s.tracker.expectFirst)
	}

	for _, c := range []jetstream.Consumer{cons, replays} {
		it, err := c.Messages(jetstream.PullMaxMessages(cfg.MaxAckPending), jetstream.WithMessagesErrOnMissingHeartbeat(false))
		if err != nil {
			for _, it := range s.iters {
				it.Stop()
			}
			return nil, fmt.Errorf("subscription: consuming %s: %w", s.durable, err)
		}
		s.iters = append(s.iters, it)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	// Goroutines: two pullers, the worker, the resyncer, and the closer
	// that closes work after the pullers and done after the worker and
	// the resyncer.
	s.statuses = cfg.Conn.StatusChanged(nats.CONNECTED) // before anything can call beginStop
	var pullers sync.WaitGroup
	pullers.Add(2)
	go s.pull(&pullers, s.iters[0], false)
	go s.pull(&pullers, s.iters[1], true)
	workerDone, resyncDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(workerDone)
		s.runWorker()
		if s.lookups != nil {
			_ = s.lookups.Unsubscribe()
		}
	}()
	go func() {
		defer close(resyncDone)
		s.resyncOnReconnect()
	}()
	go func() {
		pullers.Wait()
		close(s.work)
		<-workerDone
		s.cancel()
		<-resyncDone
		close(s.done)
	}()

	if created {
		s.log.Info("subscribed", "consumer", s.durable, "start", cfg.Start.String(), "events", cfg.filterSubjects())
	} else {
		s.log.Info("subscribed, resuming the consumer after its last acknowledged event", "consumer", s.durable, "events", cfg.filterSubjects())
	}
	return s, nil
}

// ensureConsumer creates the durable consumer cc on st, starting at
// start, or updates the one that exists, keeping its start. created
// reports which.
func ensureConsumer(ctx context.Context, st jetstream.Stream, cc jetstream.ConsumerConfig, start Start) (c jetstream.Consumer, created bool, err error) {
	for attempt := 0; ; attempt++ {
		existing, err := st.Consumer(ctx, cc.Durable)
		if err == nil {
			old := existing.CachedInfo().Config
			cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = old.DeliverPolicy, old.OptStartSeq, old.OptStartTime
			cc.Replicas, cc.MemoryStorage = old.Replicas, old.MemoryStorage
			c, err := st.UpdateConsumer(ctx, cc)
			return c, false, err
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, false, err
		}
		create := cc
		start.apply(&create)
		c, err := st.CreateConsumer(ctx, create)
		if errors.Is(err, jetstream.ErrConsumerExists) && attempt == 0 {
			continue // another process created it meanwhile: resume it
		}
		return c, err == nil, err
	}
}

func (s Start) apply(cc *jetstream.ConsumerConfig) {
	switch s.kind {
	case startLive:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	case startSequence:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.seq
	case startTime:
		t := s.time
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	default:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	}
}

// Durable is the name of the subscription's consumer on the events
// stream: Config.Name, or <Name>-<Member>of<Members> in a group.
func (s *Subscription) Durable() string { return s.durable }

// Stats returns the counters.
func (s *Subscription) Stats() Stats {
	return Stats{
		Delivered:           s.c.delivered.Load(),
		Handled:             s.c.handled.Load(),
		Duplicates:          s.c.duplicates.Load(),
		GapsFilled:          s.c.gapsFilled.Load(),
		GapEvents:           s.c.gapEvents.Load(),
		GapsSkipped:         s.c.gapsSkipped.Load(),
		Retries:             s.c.retries.Load(),
		DeadLettered:        s.c.deadLettered.Load(),
		SkippedNoHandler:    s.c.skippedNoHandler.Load(),
		AckedNotMine:        s.c.notMine.Load(),
		Replayed:            s.c.replayed.Load(),
		Malformed:           s.c.malformed.Load(),
		Tracked:             s.c.tracked.Load(),
		Resyncs:             s.c.resyncs.Load(),
		ResumeLookups:       s.c.resumeLookups.Load(),
		ResumeLookupsFailed: s.c.resumeLookupsFailed.Load(),
		Held:                s.c.held.Load(),
		Released:            s.c.released.Load(),
		Late:                s.c.late.Load(),
		HeldOverflow:        s.c.heldOverflow.Load(),
	}
}

// Done is closed once the subscription has stopped: after Stop or Drain,
// or by itself when its connection closed or a consumer was deleted (Err
// says which).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns the error that stopped the subscription by itself, nil
// while it runs and after a Stop or Drain.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.err
}

// Drain stops taking events, lets the event in hand finish (its handler,
// retries and dead letter), waits for it and for JetStream to have
// processed the acknowledgements (a second at most). The events fetched
// ahead stay unacknowledged: the next Subscribe of the consumer resets it
// to its ack floor and receives them again, in order. If ctx ends first, the
// handler's context is cancelled as by Stop and Drain returns ctx.Err()
// once the handler has returned. Do not call it from a handler.
func (s *Subscription) Drain(ctx context.Context) error {
	s.beginStop()
	select {
	case <-s.done:
		settle, cancel := context.WithTimeout(ctx, settleTimeout)
		defer cancel()
		s.settleAcks(settle)
		return nil
	case <-ctx.Done():
		s.cancel()
		<-s.done
		return ctx.Err()
	}
}

// Stop stops taking events, cancels the context of the handler in hand
// and waits for it to return, then for JetStream to have processed the
// acknowledgements (a second at most). An event whose handler fails
// because of the cancellation is neither acknowledged nor dead-lettered:
// like the events fetched ahead, the next Subscribe of the consumer
// receives it again. Do not call it from a handler.
func (s *Subscription) Stop() {
	s.beginStop()
	s.cancel()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	s.settleAcks(ctx)
}

// Delete stops the subscription (as Stop) and deletes its consumer from
// the events stream, so that its name starts afresh: a later Subscribe
// creates the consumer again at Config.Start. Outside a group it also
// deletes the replay consumer <Name>-replay; a group member leaves that
// one to the other members. The dead letters stay. A consumer already
// gone is no error.
func (s *Subscription) Delete(ctx context.Context) error {
	s.Stop()
	events, err := s.js.Stream(ctx, s.cfg.Stream)
	if err == nil {
		err = deleteConsumer(ctx, events, s.durable)
	}
	if err == nil && !s.cfg.Group.enabled() {
		err = deleteConsumer(ctx, s.dlq, s.cfg.replayDurable())
	}
	return err
}

func deleteConsumer(ctx context.Context, st jetstream.Stream, name string) error {
	if err := st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("subscription: deleting consumer %s: %w", name, err)
	}
	return nil
}

func (s *Subscription) beginStop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		for _, it := range s.iters {
			it.Drain()
		}
		if s.statuses != nil {
			s.cfg.Conn.RemoveStatusListener(s.statuses)
		}
	})
}

// resyncOnReconnect resets the consumer to its ack floor each time the
// connection comes back, until the subscription stops: what JetStream
// delivered or was told while the connection was going down may be lost
// on the way (a server that died before storing the acknowledgements it
// received, a delivery that never arrived), and would hold the ack floor
// below events handled already until AckWait. Reset, everything after
// the floor comes again in stream order; the events handled already are
// duplicates by the tracker's account, acknowledged without a handler
// call, and the floor catches up.
func (s *Subscription) resyncOnReconnect() {
	for range s.statuses { // CONNECTED after the first connection: a reconnection
		if s.isStopping() {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, resyncTimeout)
		_, err := s.stream.ResetConsumer(ctx, s.durable)
		cancel()
		if err != nil {
			s.log.Warn("connection back, but the consumer could not be reset to its ack floor: events whose acknowledgement was lost come again after AckWait, and are handled again if the subscription stops first",
				"consumer", s.durable, "err", err)
			continue
		}
		s.c.resyncs.Add(1)
		s.log.Info("connection back: consumer reset to its ack floor; the events handled since come again and are dropped as duplicates",
			"consumer", s.durable)
	}
}

// resyncTimeout bounds one reset of the consumer after a reconnection.
const resyncTimeout = 10 * time.Second

// settleTimeout bounds Stop's wait for the acknowledgements.
const settleTimeout = time.Second

// settleAcks waits until the consumer's ack floor has reached the last
// event acknowledged, so that a Subscribe that follows (and resets the
// consumer to that floor) does not receive acknowledged events again. It
// gives up when ctx ends or the connection is closed: those events are
// then handled again (at least once).
func (s *Subscription) settleAcks(ctx context.Context) {
	s.settled.Do(func() { s.settleAcksOnce(ctx) })
}

func (s *Subscription) settleAcksOnce(ctx context.Context) {
	target := s.lastAcked
	if s.order != nil {
		// Events still held (or released but not handled when the stop
		// came) stay unacknowledged: the ack floor stops below them.
		for _, low := range []uint64{s.order.lowestStreamSeq(), s.unackedLow} {
			if low > 0 {
				target = min(target, low-1)
			}
		}
	}
	if target == 0 || s.cfg.Conn.IsClosed() {
		return
	}
	for {
		info, err := s.events.Info(ctx)
		if err == nil && info.AckFloor.Stream >= target || errors.Is(err, jetstream.ErrConsumerNotFound) {
			return
		}
		if !sleep(ctx, 2*time.Millisecond) {
			s.log.Debug("stopped before JetStream processed the last acknowledgements", "lastAcked", s.lastAcked, "target", target, "err", err)
			return
		}
	}
}

// fail records the error that stops the subscription and stops it.
func (s *Subscription) fail(err error) {
	s.mu.Lock()
	first := s.mu.err == nil
	if first {
		s.mu.err = err
	}
	s.mu.Unlock()
	if first {
		s.log.Error("subscription stopped", "err", err)
	}
	s.beginStop()
	s.cancel() // nothing the handler does can be acknowledged any more
}

func (s *Subscription) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// pull hands its messages to the worker until the iterator closes.
func (s *Subscription) pull(wg *sync.WaitGroup, it jetstream.MessagesContext, replay bool) {
	defer wg.Done()
	for {
		msg, err := it.Next()
		if err == nil {
			s.work <- item{msg: msg, replay: replay}
			continue
		}
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			if !s.isStopping() {
				s.fail(fmt.Errorf("subscription %s: stopped receiving: %w", s.durable, err))
			}
			return
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound),
			errors.Is(err, nats.ErrConnectionClosed):
			s.fail(fmt.Errorf("subscription %s: %w", s.durable, err))
			it.Stop()
			return
		}
		s.log.Debug("receiving", "replays", replay, "err", err)
		select {
		case <-time.After(s.cfg.Backoff.Initial):
		case <-s.stopping:
		}
	}
}

// runWorker handles the messages one at a time, in the order received;
// once stopping, it leaves them. In event-time order it also releases the
// held events when their window has passed, and keeps their messages
// alive.
func (s *Subscription) runWorker() {
	if s.order == nil {
		for it := range s.work {
			s.take(it)
		}
		return
	}
	var (
		timer Timer
		fire  <-chan time.Time
		armed time.Time // when the timer fires; zero: stopped
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if wake, ok := s.nextWake(); ok && !s.isStopping() {
			if !wake.Equal(armed) {
				d := wake.Sub(s.cfg.Clock.Now())
				if timer == nil {
					timer, fire = s.cfg.Clock.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				armed = wake
			}
		} else if !armed.IsZero() {
			timer.Stop()
			armed = time.Time{}
		}
		select {
		case it, ok := <-s.work:
			if !ok {
				return
			}
			s.take(it)
		case <-fire:
			armed = time.Time{}
		}
		if !s.isStopping() {
			s.releaseDue()
		}
	}
}

// take handles one message from a puller; once stopping, it leaves it.
func (s *Subscription) take(it item) {
	if s.isStopping() {
		if it.replay {
			s.nak(it.msg) // order does not matter: at once to another member
		}
		return
	}
	if it.replay {
		s.processReplay(it.msg)
	} else {
		s.processEvent(it.msg)
	}
}

// nextWake is when the worker has something to do without a message:
// release a held event or keep held messages alive.
func (s *Subscription) nextWake() (time.Time, bool) {
	due, ok := s.order.next()
	if s.touchArmed && (!ok || s.nextTouch.Before(due)) {
		return s.nextTouch, true
	}
	return due, ok
}

// releaseDue keeps the held messages alive when it is time, and hands
// over the held events whose window has passed.
func (s *Subscription) releaseDue() {
	now := s.cfg.Clock.Now()
	if s.touchArmed && !now.Before(s.nextTouch) {
		s.touchHeld(now)
	}
	s.release(s.order.due(now))
}

// touchEvery is how long a held event's messages go without a
// keep-alive: half of AckWait, so that JetStream does not deliver them
// again while they wait.
func (s *Subscription) touchEvery() time.Duration { return s.cfg.AckWait / 2 }

// touchHeld tells JetStream that the held messages not touched for
// touchEvery are in progress.
func (s *Subscription) touchHeld(now time.Time) {
	s.nextTouch, s.touchArmed = s.order.stale(now, s.touchEvery(), func(h *heldEvent) {
		for _, m := range h.msgs {
			_ = m.InProgress()
		}
	})
}

// hold puts an accepted event in the event-time order, msg (nil for one
// read from history) to be acknowledged once it is handled, and hands
// over what that releases at once. nodeLate is the node's late mark
// (api.HeaderLate). It returns false when the subscription was stopped
// first.
func (s *Subscription) hold(d *delivery, msg jetstream.Msg, nodeLate bool) bool {
	h := &heldEvent{d: d}
	if msg != nil {
		h.msgs = []jetstream.Msg{msg}
	}
	now := s.cfg.Clock.Now()
	rs := s.order.add(h, now, nodeLate)
	if at := now.Add(s.touchEvery()); msg != nil && (!s.touchArmed || at.Before(s.nextTouch)) {
		s.nextTouch, s.touchArmed = at, true
	}
	s.c.held.Store(uint64(s.order.held()))
	return s.release(rs)
}

// release hands events released by the event-time order to the handlers
// and acknowledges their messages. It returns false when the
// subscription was stopped first: the events not handled stay
// unacknowledged, to be delivered again.
func (s *Subscription) release(rs []released) bool {
	defer func() { s.c.held.Store(uint64(s.order.held())) }()
	for i, r := range rs {
		h := r.h
		h.d.event.Late = r.late
		s.c.released.Add(1)
		if r.late {
			s.c.late.Add(1)
			s.log.Debug("late event", "aggregate", h.d.event.Ref().String(), "sequence", h.d.event.Sequence,
				"timestamp", h.d.event.Timestamp, "streamSeq", h.d.streamSeq)
		}
		if r.overflow {
			s.c.heldOverflow.Add(1)
		}
		keepalive := func() {
			for _, m := range h.msgs {
				_ = m.InProgress()
			}
			if now := s.cfg.Clock.Now(); s.touchArmed && !now.Before(s.nextTouch) {
				s.touchHeld(now)
			}
		}
		if !s.handle(h.d, keepalive) {
			for _, r := range rs[i:] {
				for _, m := range r.h.msgs {
					if seq := msgStreamSeq(m); seq > 0 && (s.unackedLow == 0 || seq < s.unackedLow) {
						s.unackedLow = seq
					}
				}
			}
			return false
		}
		for _, m := range h.msgs {
			s.ackEvent(m, msgStreamSeq(m))
		}
	}
	return true
}

// processEvent is the path of a message from the events stream: decode,
// group share, dedup, gap, handler, acknowledgement.
func (s *Subscription) processEvent(msg jetstream.Msg) {
	s.c.delivered.Add(1)
	keepalive := func() { _ = msg.InProgress() }
	d := &delivery{body: msg.Data(), header: msg.Headers(), subject: msg.Subject()}
	if meta, err := msg.Metadata(); err == nil {
		d.streamSeq = meta.Sequence.Stream
	}
	d.msgID = s.cfg.Name + ":stream:" + strconv.FormatUint(d.streamSeq, 10)
	e, err := s.decode(msg.Data())
	if err != nil {
		s.c.malformed.Add(1)
		if s.deadLetter(d, err, 0, keepalive) {
			s.ackEvent(msg, d.streamSeq)
		}
		return
	}
	nodeLate := d.header.Get(api.HeaderLate) == "true"
	d.event = Event{Event: e, Source: FromStream, StreamSeq: d.streamSeq}
	if s.order == nil {
		d.event.Late = nodeLate
	}
	if !s.mine(e.AggregateID) {
		s.c.notMine.Add(1)
		s.ackEvent(msg, d.streamSeq)
		return
	}
	id := e.AggregateID
	if s.resumeFloor > 0 && !s.tracker.knows(id) && !s.resume(id, keepalive) {
		return // stopped: left unacknowledged
	}
	switch v, from := s.tracker.check(id, e.Sequence); {
	case v == duplicate:
		s.c.duplicates.Add(1)
		if s.order != nil {
			if h := s.order.find(id, e.Sequence); h != nil {
				// Still held (a redelivery, or the stream's copy of an
				// event read from history): acknowledged once handled, not
				// before, or a crash would lose it.
				s.log.Debug("duplicate of a held event", "aggregate", e.Ref().String(), "sequence", e.Sequence, "streamSeq", d.streamSeq)
				h.attach(msg, d.streamSeq)
				return
			}
		}
		s.log.Debug("duplicate dropped", "aggregate", e.Ref().String(), "sequence", e.Sequence, "streamSeq", d.streamSeq)
		s.ackEvent(msg, d.streamSeq)
		return
	case v == gap && !s.cfg.DisableGapFill:
		if !s.fillGap(id, from, e.Sequence-1, keepalive) {
			return // stopped: left unacknowledged
		}
	}
	if s.wanted != nil && !s.wanted[e.VersionedName().String()] {
		// Not in the filter (the consumer was changed by hand?).
		s.markDone(id, e.Sequence)
		s.ackEvent(msg, d.streamSeq)
		return
	}
	if s.order != nil {
		// Accepted in log order (a duplicate of it is recognised from
		// now on); handed over in event-time order.
		s.markDone(id, e.Sequence)
		s.hold(d, msg, nodeLate)
		return
	}
	if !s.handle(d, keepalive) {
		return // stopped: left unacknowledged
	}
	s.markDone(id, e.Sequence)
	s.ackEvent(msg, d.streamSeq)
}

// processReplay is the path of a replayed dead letter: handler,
// acknowledgement, and its removal from the dead-letter stream. Replays
// skip the group share, dedup and gap checks: a replay is explicit.
func (s *Subscription) processReplay(msg jetstream.Msg) {
	s.c.replayed.Add(1)
	keepalive := func() { _ = msg.InProgress() }
	h := msg.Headers()
	d := &delivery{body: msg.Data(), header: h, subject: h.Get(api.HeaderDeadSubject)}
	d.streamSeq, _ = strconv.ParseUint(h.Get(api.HeaderDeadStreamSeq), 10, 64) // absent: read from history
	var replaySeq uint64
	if meta, err := msg.Metadata(); err == nil {
		replaySeq = meta.Sequence.Stream
	}
	d.msgID = s.cfg.Name + ":replay:" + strconv.FormatUint(replaySeq, 10)
	e, err := s.decode(msg.Data())
	var ok bool
	if err != nil {
		s.c.malformed.Add(1)
		ok = s.deadLetter(d, err, 0, keepalive)
	} else {
		d.event = Event{Event: e, Source: FromReplay, StreamSeq: d.streamSeq}
		ok = s.handle(d, keepalive)
	}
	if !ok {
		s.nak(msg)
		return
	}
	s.ack(msg)
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := deleteMsg(ctx, s.dlq, replaySeq); err != nil {
		s.log.Warn("a handled replay stays in the dead-letter stream", "seq", replaySeq, "err", err)
	}
}

// decode reads an event of the subscription's type.
func (s *Subscription) decode(data []byte) (model.Event, error) {
	var e model.Event
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("not an event: %w", err)
	}
	switch {
	case e.AggregateType != s.cfg.AggregateType:
		return e, fmt.Errorf("not an event: aggregate type %q, want %q", e.AggregateType, s.cfg.AggregateType)
	case e.AggregateID == "":
		return e, errors.New("not an event: no aggregate id")
	case e.Sequence == 0:
		return e, errors.New("not an event: sequence 0")
	case e.Name == "" || e.Version < 0:
		return e, fmt.Errorf("not an event: name %q, version %d", e.Name, e.Version)
	}
	return e, nil
}

// mine reports whether the aggregate is in this group member's share.
func (s *Subscription) mine(id string) bool {
	g := s.cfg.Group
	return !g.enabled() || api.Partition(g.Members, s.cfg.AggregateType, id) == g.Member
}

func (s *Subscription) markDone(id string, seq uint64) {
	s.tracker.done(id, seq)
	s.c.tracked.Store(uint64(s.tracker.size()))
}

// handle calls the handler of d's event with retries, and dead-letters
// the event when they are exhausted. It returns false when the
// subscription was stopped first: the event was then neither handled nor
// dead-lettered.
func (s *Subscription) handle(d *delivery, keepalive func()) bool {
	fn := s.handlers.lookup(d.event.VersionedName().String())
	if fn == nil {
		s.c.skippedNoHandler.Add(1)
		return true
	}
	var err error
	attempt := 1
	for ; ; attempt++ {
		d.event.Attempt = attempt
		err = call(s.ctx, fn, d.event)
		if err == nil {
			s.c.handled.Add(1)
			return true
		}
		if s.ctx.Err() != nil {
			return false
		}
		s.log.Debug("handler failed", "aggregate", d.event.Ref().String(), "sequence", d.event.Sequence,
			"event", d.event.VersionedName().String(), "source", d.event.Source.String(), "attempt", attempt, "err", err)
		if attempt >= s.cfg.MaxAttempts || isPermanent(err) {
			break
		}
		s.c.retries.Add(1)
		keepalive()
		if !s.wait(s.cfg.Backoff.delay(attempt)) {
			return false
		}
	}
	return s.deadLetter(d, err, attempt, keepalive)
}

// deadLetter publishes d to the dead letters, retrying until JetStream
// acknowledges it; false when the subscription was stopped first.
func (s *Subscription) deadLetter(d *delivery, cause error, attempts int, keepalive func()) bool {
	m := nats.NewMsg(s.deadLetterSubject(d))
	body, header := d.body, d.header
	if d.event.Source == FromHistory { // as the nodes would have published it
		built, err := api.EventMessage(s.cfg.Prefix, &d.event.Event)
		if err != nil {
			s.log.Error("cannot encode an event for the dead letters", "aggregate", d.event.Ref().String(), "sequence", d.event.Sequence, "err", err)
			return false
		}
		body, header = built.Data, built.Header
	}
	m.Data = body
	for k, v := range header {
		m.Header[k] = append([]string(nil), v...)
	}
	m.Header.Del(HeaderReplayOf)
	m.Header.Set(api.HeaderDeadError, headerValue(cause.Error()))
	m.Header.Set(api.HeaderDeadAttempts, strconv.Itoa(attempts))
	m.Header.Set(api.HeaderDeadConsumer, s.cfg.Name)
	m.Header.Set(api.HeaderDeadSubject, d.subject)
	m.Header.Del(api.HeaderDeadStreamSeq)
	if d.streamSeq > 0 {
		m.Header.Set(api.HeaderDeadStreamSeq, strconv.FormatUint(d.streamSeq, 10))
	}
	m.Header.Set(api.HeaderMsgID, d.msgID)
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
		ack, err := s.js.PublishMsg(ctx, m)
		cancel()
		if err == nil {
			s.c.deadLettered.Add(1)
			s.log.Warn("event dead-lettered", "aggregate", d.event.Ref().String(), "sequence", d.event.Sequence,
				"event", d.event.VersionedName().String(), "attempts", attempts, "err", cause,
				"deadLetterSeq", ack.Sequence, "duplicate", ack.Duplicate)
			return true
		}
		if s.ctx.Err() != nil {
			return false
		}
		s.log.Error("dead letter not stored; retrying", "subject", m.Subject, "try", try, "err", err)
		keepalive()
		if !s.wait(s.cfg.Backoff.delay(try)) {
			return false
		}
	}
}

// deadLetterSubject is <prefix>.deadletter.<Name>.<type>.<name_version>;
// for a message that is not an event, the last token of the subject it
// came on stands for the name.
func (s *Subscription) deadLetterSubject(d *delivery) string {
	if d.event.AggregateID != "" {
		return api.DeadLetterSubject(s.cfg.Prefix, s.cfg.Name, s.cfg.AggregateType, d.event.VersionedName())
	}
	// <prefix>.events.<type>.<name>.<token>: the name token.
	name, _, _ := strings.Cut(strings.TrimPrefix(d.subject, api.EventSubjectPrefix(s.cfg.Prefix, s.cfg.AggregateType)), ".")
	if name == "" || strings.ContainsAny(name, "*>") {
		name = "unknown"
	}
	return s.cfg.Prefix + ".deadletter." + s.cfg.Name + "." + s.cfg.AggregateType + "." + name
}

// maxHeaderError bounds the error text in a dead letter's header.
const maxHeaderError = 2048

// headerValue makes text fit in one header line.
func headerValue(text string) string {
	text = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, text)
	if len(text) > maxHeaderError {
		cut := maxHeaderError
		for cut > 0 && text[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
		text = text[:cut] + "…"
	}
	return text
}

// ackEvent acknowledges an events stream message and remembers its
// sequence for settleAcks.
func (s *Subscription) ackEvent(msg jetstream.Msg, streamSeq uint64) {
	s.ack(msg)
	s.lastAcked = max(s.lastAcked, streamSeq)
}

func (s *Subscription) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		s.log.Debug("acknowledging", "subject", msg.Subject(), "err", err)
	}
}

func (s *Subscription) nak(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		s.log.Debug("giving an event back", "subject", msg.Subject(), "err", err)
	}
}

// wait waits d on the subscription's clock, or less when it is stopped
// (then it returns false).
func (s *Subscription) wait(d time.Duration) bool {
	t, fire := s.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-fire:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// sleep waits d, or less when ctx ends (then it returns false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
