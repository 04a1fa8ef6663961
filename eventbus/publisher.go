package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/gather"
	"github.com/concursus-go/concursus/model"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Conn is the NATS connection to publish on (not owned). Required.
	Conn *nats.Conn
	// Prefix is the subject prefix. Required.
	Prefix string
	// Writer names this publisher in the outbox: the node id. Required
	// with an Outbox.
	Writer string
	// Outbox and Log are the store's outbox and event log (the same
	// store). Without an Outbox publication is best effort: failures are
	// counted and logged, nothing is republished.
	Outbox eventlog.Outbox
	Log    eventlog.Log
	// JetStream makes the stream's PubAck the acknowledgement of an event
	// (set when the node keeps a stream); otherwise a flush is.
	JetStream bool
	// BucketLength groups outbox marks in time; default 5s.
	BucketLength time.Duration
	// QueueSize bounds the commands' event batches waiting to be sent;
	// past it a batch is left to the outbox. Default 65536.
	QueueSize int
	// AckTimeout bounds the wait for an acknowledgement; default 5s.
	AckTimeout time.Duration
	// MaintainEvery is how often the watermark moves and dirty buckets are
	// republished; default 1s (and at most BucketLength/2).
	MaintainEvery time.Duration
	Logger        *slog.Logger
	// Clock defaults to time.Now.
	Clock func() time.Time
}

func (c *PublisherConfig) fill() error {
	if c.Prefix == "" {
		return errors.New("eventbus: a NATS connection and a prefix are required")
	}
	if c.Outbox != nil && (c.Writer == "" || c.Log == nil) {
		return errors.New("eventbus: an outbox needs a writer id and the event log")
	}
	if c.BucketLength <= 0 {
		c.BucketLength = 5 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1 << 16
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 5 * time.Second
	}
	if c.MaintainEvery <= 0 {
		c.MaintainEvery = time.Second
	}
	c.MaintainEvery = min(c.MaintainEvery, c.BucketLength/2)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// PublisherStats counts what a Publisher did. It is declared in package
// api, whose admin replies carry it (Info.Publisher, ClusterInfo.Publisher).
type PublisherStats = api.PublisherStats

// Publisher implements executor.Publisher on a NATS connection. Start it
// with NewPublisher and stop it with Close after the executor is closed.
//
// Its bookkeeping is a ledger (pure, under mu); its I/O is the outbox and
// a sender, never called with mu held. Goroutines: sendLoop and ackLoop
// (counted by loops, ended by closing jobs), maintainLoop (counted by
// maint, ended by closing stop). Lock order: adopting, then mu.
type Publisher struct {
	cfg  PublisherConfig
	out  sender
	log  *slog.Logger
	jobs chan job
	acks chan sent
	stop chan struct{}

	loops sync.WaitGroup // sendLoop, ackLoop
	maint sync.WaitGroup // maintainLoop

	mu struct {
		sync.Mutex
		closed bool
		ledger *ledger
	}

	adopting sync.Mutex // one adopt at a time
	adopted  atomic.Bool

	published, failed, deferred, republished, recovered atomic.Int64
	rounds                                              atomic.Int64   // maintenance rounds done
	warn                                                rate.Sometimes // warnings, at most every 10 s
}

type job struct {
	bucket int64
	events []model.Event
}

// sent is a job handed from the sending to the acknowledging goroutine.
type sent struct {
	job job
	fl  flight
}

var _ executor.Publisher = (*Publisher)(nil)

// NewPublisher starts a publisher. With an outbox it first reads this
// writer's own position and takes over the buckets a previous run left
// unpublished (they are republished by the maintenance loop).
func NewPublisher(ctx context.Context, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Conn == nil {
		return nil, errors.New("eventbus: a NATS connection and a prefix are required")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	out := sender{prefix: cfg.Prefix, conn: cfg.Conn, timeout: cfg.AckTimeout}
	if cfg.JetStream {
		js, err := jetstream.New(cfg.Conn, jetstream.WithPublishAsyncMaxPending(16384),
			jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
		if err != nil {
			return nil, fmt.Errorf("eventbus: %w", err)
		}
		out.js = js
	}
	return startPublisher(ctx, cfg, out), nil
}

// startPublisher starts a publisher with a filled cfg on out (a fake bus
// in tests).
func startPublisher(ctx context.Context, cfg PublisherConfig, out sender) *Publisher {
	p := &Publisher{
		cfg:  cfg,
		out:  out,
		log:  cfg.Logger,
		jobs: make(chan job, cfg.QueueSize),
		acks: make(chan sent, 4096),
		stop: make(chan struct{}),
		warn: rate.Sometimes{Interval: 10 * time.Second},
	}
	p.mu.ledger = newLedger(cfg.BucketLength)
	if cfg.Outbox != nil {
		// The store may still be connecting: Prepare and the maintenance
		// loop retry until this succeeds.
		_ = p.adopt(ctx)
	}
	p.loops.Add(2)
	go p.sendLoop()
	go p.ackLoop()
	p.maint.Add(1)
	go p.maintainLoop()
	return p
}

// adopt reads this writer's position once: the buckets a previous run of
// the same writer left above its watermark become dirty, so they are
// published from the log, and new marks go to later buckets. Nothing is
// marked before it succeeds.
func (p *Publisher) adopt(ctx context.Context) error {
	p.adopting.Lock()
	defer p.adopting.Unlock()
	if p.adopted.Load() {
		return nil
	}
	ws, err := p.cfg.Outbox.Writers(ctx)
	if err != nil {
		return fmt.Errorf("eventbus: reading the outbox: %w", err)
	}
	own := eventlog.OutboxWriter{Writer: p.cfg.Writer}
	if i := slices.IndexFunc(ws, func(w eventlog.OutboxWriter) bool { return w.Writer == p.cfg.Writer }); i >= 0 {
		own = ws[i]
	}
	p.mu.Lock()
	start := p.mu.ledger.firstBucket(own, p.cfg.Clock())
	p.mu.Unlock()
	if own.Published == 0 {
		// A writer's watermark is set before its first mark, so that the
		// pending range of a writer is always bounded below.
		if err := p.cfg.Outbox.SetPublished(ctx, p.cfg.Writer, start-1); err != nil {
			return fmt.Errorf("eventbus: starting the outbox: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.adopted.Store(true)
	if lo, hi := p.mu.ledger.adopt(own, start); hi >= lo {
		p.log.Info("outbox: a previous run left events that may be unpublished; publishing them from the log",
			"buckets", hi-lo+1)
	}
	return nil
}

// Prepare implements executor.Publisher: it writes the marks to the outbox.
func (p *Publisher) Prepare(ctx context.Context, marks []eventlog.Mark) (executor.Ticket, error) {
	if p.cfg.Outbox != nil && !p.adopted.Load() {
		if err := p.adopt(ctx); err != nil {
			return 0, err
		}
	}
	p.mu.Lock()
	b := p.mu.ledger.prepare(p.cfg.Clock(), len(marks))
	p.mu.Unlock()
	if p.cfg.Outbox == nil {
		return executor.Ticket(b), nil
	}
	if err := p.cfg.Outbox.Mark(ctx, p.cfg.Writer, b, marks); err != nil {
		p.mu.Lock()
		p.mu.ledger.abandon(b, len(marks))
		p.mu.Unlock()
		return 0, err
	}
	return executor.Ticket(b), nil
}

// Discard implements executor.Publisher.
func (p *Publisher) Discard(t executor.Ticket, maybeWritten bool) {
	p.settle(int64(t), !maybeWritten, 0)
}

// Publish implements executor.Publisher: it queues the events for the
// sending goroutine, or leaves them to the outbox when the queue is full.
func (p *Publisher) Publish(t executor.Ticket, events []model.Event) {
	j := job{bucket: int64(t), events: slices.Clone(events)}
	p.mu.Lock()
	closed := p.mu.closed
	p.mu.Unlock()
	if !closed {
		select {
		case p.jobs <- j:
			return
		default:
		}
	}
	p.deferred.Add(int64(len(events)))
	p.warn.Do(func() {
		p.log.Warn("event queue full or closed; events left to the outbox", "deferred", p.deferred.Load())
	})
	p.settle(j.bucket, false, 0)
}

// settle resolves one mark of bucket b: ok, or dirty (to be republished),
// and counts its events.
func (p *Publisher) settle(b int64, ok bool, events int) {
	p.mu.Lock()
	p.mu.ledger.settle(b, ok)
	p.mu.Unlock()
	if ok {
		p.published.Add(int64(events))
	} else {
		p.failed.Add(int64(events))
	}
}

// sendLoop sends the queued jobs in order and hands each to ackLoop.
func (p *Publisher) sendLoop() {
	defer p.loops.Done()
	defer close(p.acks)
	for j := range p.jobs {
		s := sent{job: j}
		for i := range j.events {
			if !p.out.send(&s.fl, &j.events[i]) {
				break
			}
		}
		p.acks <- s
	}
}

// ackLoop awaits the acknowledgements of the sent jobs in order and
// settles their marks.
func (p *Publisher) ackLoop() {
	defer p.loops.Done()
	var group []sent
	for s := range p.acks {
		if p.out.js != nil {
			p.resolve(s, p.out.await(&s.fl))
			continue
		}
		// Core NATS: one flush acknowledges everything sent before it.
		group = append(group[:0], s)
		group = gather.Ready(group, p.acks, 1024)
		err := p.out.flush()
		for _, g := range group {
			p.resolve(g, err)
		}
	}
}

// resolve settles a sent job: err is its acknowledgement's failure, or
// else its send failure, if any.
func (p *Publisher) resolve(s sent, err error) {
	if err == nil && s.fl.err != nil {
		err = s.fl.err
	}
	if err != nil {
		p.warn.Do(func() {
			p.log.Warn("events not acknowledged by the bus; they will be published from the log",
				"aggregate", s.job.events[0].Ref().String(), "sequence", s.job.events[0].Sequence, "err", err)
		})
	}
	p.settle(s.job.bucket, err == nil, len(s.job.events))
}

func (p *Publisher) maintainLoop() {
	defer p.maint.Done()
	t := time.NewTicker(p.cfg.MaintainEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.maintain(context.Background())
		}
	}
}

// maintain moves the watermark over complete buckets and republishes the
// oldest dirty bucket.
func (p *Publisher) maintain(ctx context.Context) {
	defer p.rounds.Add(1)
	if p.cfg.Outbox == nil {
		p.mu.Lock()
		p.mu.ledger.forgetSettled()
		p.mu.Unlock()
		return
	}
	if !p.adopted.Load() {
		if err := p.adopt(ctx); err != nil {
			return
		}
	}
	p.mu.Lock()
	w, record := p.mu.ledger.advance(p.cfg.Clock())
	dirty, gen, isDirty := p.mu.ledger.oldestDirty()
	p.mu.Unlock()
	if record {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
		err := p.cfg.Outbox.SetPublished(ctx, p.cfg.Writer, w)
		cancel()
		if err == nil {
			p.mu.Lock()
			p.mu.ledger.recorded(w)
			p.mu.Unlock()
		} else {
			p.warn.Do(func() { p.log.Warn("outbox: recording the published watermark failed", "bucket", w, "err", err) })
		}
	}
	if !isDirty || !p.out.connected() {
		return
	}
	n, err := p.republish(ctx, p.cfg.Writer, dirty)
	p.republished.Add(int64(n))
	if err != nil {
		p.warn.Do(func() {
			p.log.Warn("outbox: republishing from the log failed; will retry", "bucket", dirty, "err", err)
		})
		return
	}
	p.mu.Lock()
	p.mu.ledger.republished(dirty, gen)
	p.mu.Unlock()
	if n > 0 {
		p.log.Info("outbox: events published from the log", "bucket", dirty, "events", n)
	}
}

// republish publishes the events of writer's marks in bucket from the log
// and waits for the bus to acknowledge them. It returns how many events
// were acknowledged.
func (p *Publisher) republish(ctx context.Context, writer string, bucket int64) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, 4*p.cfg.AckTimeout)
	defer cancel()
	marks, err := p.cfg.Outbox.Marks(rctx, writer, bucket)
	if err != nil {
		return 0, err
	}
	total := 0
	for start := 0; start < len(marks); start += 256 {
		n, err := p.publishMarks(rctx, marks[start:min(start+256, len(marks))])
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// publishMarks reads each mark's events from the log, sends them and
// waits for the acknowledgements.
func (p *Publisher) publishMarks(ctx context.Context, marks []eventlog.Mark) (int, error) {
	var fl flight
	for _, mk := range marks {
		for e, err := range eventlog.Events(ctx, p.cfg.Log, mk.Ref, mk.First, int(min(mk.Last-mk.First+1, eventlog.DefaultPageSize))) {
			if err != nil {
				return 0, err
			}
			if e.Sequence > mk.Last {
				break
			}
			if !p.out.send(&fl, &e) {
				return 0, fl.err
			}
		}
	}
	if err := p.out.await(&fl); err != nil {
		return 0, err
	}
	return fl.sent, nil
}

// Recover publishes from the log the events of another writer's buckets
// above its watermark (a dead node's outbox), then moves its watermark to
// its last bucket. It returns how many events were published; the caller
// may then Forget the writer.
func (p *Publisher) Recover(ctx context.Context, writer string) (int, error) {
	if p.cfg.Outbox == nil {
		return 0, errors.New("eventbus: no outbox")
	}
	if writer == p.cfg.Writer {
		return 0, errors.New("eventbus: a publisher recovers its own writer by itself")
	}
	ws, err := p.cfg.Outbox.Writers(ctx)
	if err != nil {
		return 0, err
	}
	i := slices.IndexFunc(ws, func(w eventlog.OutboxWriter) bool { return w.Writer == writer })
	if i < 0 || !ws[i].Pending() {
		return 0, nil
	}
	total := 0
	lo, hi := pendingRange(ws[i])
	for b := lo; b <= hi; b++ {
		n, err := p.republish(ctx, writer, b)
		total += n
		p.recovered.Add(int64(n))
		if err != nil {
			return total, fmt.Errorf("eventbus: recovering %s bucket %d: %w", writer, b, err)
		}
		if err := p.cfg.Outbox.SetPublished(ctx, writer, b); err != nil {
			return total, fmt.Errorf("eventbus: recovering %s: %w", writer, err)
		}
	}
	return total, nil
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() PublisherStats {
	s := PublisherStats{
		Published:   p.published.Load(),
		Failed:      p.failed.Load(),
		Deferred:    p.deferred.Load(),
		Republished: p.republished.Load(),
		Recovered:   p.recovered.Load(),
		Outbox:      p.cfg.Outbox != nil,
	}
	p.mu.Lock()
	s.Watermark, s.Outstanding, s.DirtyBuckets = p.mu.ledger.stats()
	p.mu.Unlock()
	return s
}

// Close stops taking events, waits (within ctx) for those queued to be
// acknowledged, and records the final watermark. Events still unpublished
// then stay in the outbox for the next run or for the node that takes
// over. Call it after the executor is closed.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.closed = true
	p.mu.Unlock()
	close(p.jobs)
	done := make(chan struct{})
	go func() { p.loops.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("eventbus: waiting for acknowledgements: %w", ctx.Err())
	}
	close(p.stop)
	p.maint.Wait()
	if err == nil && p.cfg.Outbox != nil {
		// Let the last bucket close: everything acknowledged is released.
		p.mu.Lock()
		p.mu.ledger.closeCurrent()
		p.mu.Unlock()
		p.maintainFinal(ctx)
	}
	return err
}

// maintainFinal republishes what is dirty while it makes progress and ctx
// allows, and records the watermark one last time.
func (p *Publisher) maintainFinal(ctx context.Context) {
	for ctx.Err() == nil {
		before := p.Stats().DirtyBuckets
		p.maintain(ctx)
		if after := p.Stats().DirtyBuckets; after == 0 || after >= before {
			break // done, or no progress: leave it to the next run
		}
	}
	p.maintain(ctx) // records the watermark after the last republication
}

// Message builds the NATS message for one event.
func Message(prefix string, e *model.Event) (*nats.Msg, error) { return api.EventMessage(prefix, e) }
