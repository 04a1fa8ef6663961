package subscription

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// Errors. Each is returned wrapped, with the offending value; check them
// with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate (and so Subscribe) refused a value.
	// Nothing was created. Do not retry unchanged.
	ErrInvalidConfig = errors.New("subscription: invalid config")
	// ErrInvalidHandlers: a handler was registered under a name that is
	// not a versioned event name, twice under one name, or for an event
	// the subscription's Events filter leaves out. Subscribe returns it.
	ErrInvalidHandlers = errors.New("subscription: invalid handlers")
	// ErrNoStream: the events stream does not exist. The nodes create it
	// when they run with a stream (cmd/node --stream, node.Config.Stream,
	// eventbus.EnsureStream on the server side); retry once they do.
	ErrNoStream = errors.New("subscription: the events stream does not exist")
	// ErrNoDeadLetterStream: no subscription has created the dead-letter
	// stream of this prefix yet (see EnsureDeadLetterStream), so there are
	// no dead letters to list or replay.
	ErrNoDeadLetterStream = errors.New("subscription: the dead-letter stream does not exist")
	// ErrDeadLetterNotFound: ReplayDeadLetters was given a sequence that is
	// not a dead letter of the consumer (never was, or already replayed).
	ErrDeadLetterNotFound = errors.New("subscription: dead letter not found")
	// ErrHandlerPanic wraps the value of a handler's panic; the panic is a
	// failed attempt like an error.
	ErrHandlerPanic = errors.New("subscription: handler panicked")
	// ErrPayload: an event's payload does not decode into the handler's
	// payload type (see On). It is permanent: the event goes to the dead
	// letters without further attempts.
	ErrPayload = errors.New("subscription: payload does not decode")
)

// Defaults of Config.
const (
	DefaultMaxAttempts    = 5
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	DefaultMaxAckPending  = 128
	DefaultAckWait        = 30 * time.Second
	DefaultGapTimeout     = 30 * time.Second
	DefaultHistoryTimeout = 2 * time.Second

	// Defaults of the event-time order (Config.Order EventTime).
	DefaultSettleWindow = 2 * time.Second
	DefaultMaxHeld      = 4096
)

// Config configures one subscription. Subscribe copies it and fills the
// defaults (see DefaultConfig) of the zero fields.
type Config struct {
	// Conn is the NATS connection; the subscription uses it and does not
	// close it. Required.
	Conn *nats.Conn
	// Prefix is the nodes' subject prefix. Default api.DefaultPrefix.
	Prefix string
	// Stream is the events stream. Default api.StreamName(Prefix).
	Stream string
	// Name names the consumer: its durable JetStream consumer (per group
	// member, see Group), its dead letters
	// (<prefix>.deadletter.<Name>.…) and its replays
	// (<prefix>.replay.<Name>). Letters, digits, '-' and '_'. Required.
	Name string
	// AggregateType is the one aggregate type consumed. Required.
	AggregateType string
	// Events are the versioned event names consumed ("created_0"); the
	// others are not even delivered. Empty: every event of the type.
	Events []string
	// Start is where a new durable consumer begins. It only applies when
	// Subscribe creates the consumer: one that exists resumes after its
	// ack floor, whatever Start says. Default FromBeginning().
	Start Start
	// Group shares the work among several processes. Default: no group,
	// this subscription handles every aggregate.
	Group Group
	// MaxAttempts is how many times a handler is called for one event
	// before the event goes to the dead letters. Default 5.
	MaxAttempts int
	// Backoff is the wait between attempts, and between retries of a
	// history read or a dead-letter publication. Default 100ms doubling
	// to 5s.
	Backoff Backoff
	// MaxAckPending bounds the events delivered to this subscription and
	// not yet acknowledged; it is also how many are fetched ahead. Their
	// acknowledgement timers run while earlier events are handled, so keep
	// MaxAckPending × handling time under AckWait (an event redelivered
	// meanwhile is recognised as a duplicate, but costs a delivery).
	// Default 128; in EventTime order MaxHeld+128, since the held events
	// are not acknowledged either (see the package documentation,
	// "Event-time order").
	MaxAckPending int
	// AckWait is how long JetStream waits for an acknowledgement before it
	// delivers an event again. Retries and gap filling tell it the event
	// is in progress, and so does the event-time order for the events it
	// holds longer than AckWait/2. Default 30s, or 2×Backoff.Max or
	// 2×SettleWindow when longer; more than Backoff.Max and SettleWindow.
	AckWait time.Duration
	// GapTimeout is how long a gap is retried from the history API before
	// it is skipped (counted in Stats.GapsSkipped). Default 30s.
	GapTimeout time.Duration
	// HistoryTimeout bounds one history request. Default 2s.
	HistoryTimeout time.Duration
	// DisableGapFill turns gap filling off: an event is accepted however
	// far its sequence jumps (duplicates are still dropped). Consider it
	// with a sparse Events filter, where the events left out make a jump
	// at almost every event, each costing a history read.
	DisableGapFill bool
	// Order is the order in which each aggregate's events reach the
	// handlers: LogOrder (the zero value: sequence order, at once) or
	// EventTime (event-time order, after SettleWindow). See the package
	// documentation, "Event-time order".
	Order Order
	// SettleWindow (EventTime only) is how long an event is held after
	// it was received, so that events of its aggregate stamped earlier
	// but arriving later can still go before it: the paper's watermark.
	// An event that arrives after a later-stamped event of its aggregate
	// was released is delivered at once, marked Late. Default 2s; must be
	// positive and below AckWait. Zero with LogOrder.
	SettleWindow time.Duration
	// MaxHeld (EventTime only) bounds the events held at once, for all
	// aggregates together (events read from history to fill a gap
	// included). Past it the event received first is released before its
	// window ends (Stats.HeldOverflow), with the events of its aggregate
	// stamped before it. Default 4096. Zero with LogOrder.
	MaxHeld int
	// Clock is the time source of the settle window, the keep-alives of
	// held events, GapTimeout and the waits between retries (of a
	// handler, a history read, a dead letter). Default: the system
	// clock. Tests inject a fake one.
	Clock Clock
	// Logger receives warnings (skipped gaps, dead letters) and debug
	// lines. Default slog.Default().
	Logger *slog.Logger
}

// Order is the order in which a subscription hands each aggregate's
// events to its handlers.
type Order uint8

const (
	// LogOrder hands each aggregate's events over in sequence order (the
	// log order), each as soon as it is received. The default.
	LogOrder Order = iota
	// EventTime holds each aggregate's events for Config.SettleWindow and
	// hands them over in event-time order (model.TimeKey: timestamp,
	// stream id, sequence); an event later than that is handed over at
	// once, marked Event.Late.
	EventTime
)

func (o Order) String() string {
	switch o {
	case LogOrder:
		return "log order"
	case EventTime:
		return "event time"
	}
	return fmt.Sprintf("Order(%d)", uint8(o))
}

// Clock is a time source: the system clock by default, a fake one in
// tests. Its methods may be called from several goroutines.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that sends the time on c once d has
	// passed, unless stopped or reset first.
	NewTimer(d time.Duration) (t Timer, c <-chan time.Time)
}

// Timer is a timer of a Clock, with the semantics of time.Timer since Go
// 1.23: after Stop or Reset returns, no stale time is received from its
// channel.
type Timer interface {
	// Reset makes the timer fire after d; it reports whether it was
	// active.
	Reset(d time.Duration) bool
	// Stop stops the timer; it reports whether it was active.
	Stop() bool
}

// systemClock is the Clock of package time.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

// Backoff is a doubling wait: Initial, 2×Initial, 4×Initial … capped at
// Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// delay returns the wait before retry n (n = 1 for the first retry).
func (b Backoff) delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Group is a static consumer group: Members processes share the work,
// each with its own durable consumer <Name>-<Member>of<Members> over the
// same events, and each handles only the aggregates whose partition
// api.Partition(Members, type, id) equals its Member. The zero Group
// is no group.
//
// Changing Members changes the share of almost every aggregate, so it
// needs new consumers: see the package documentation, "Groups".
type Group struct {
	// Members is the number of members, 1 or more; 0 means no group.
	Members int
	// Member is this process's place in the group, 0 to Members-1 (a
	// StatefulSet ordinal fits).
	Member int
}

func (g Group) enabled() bool { return g.Members > 0 }

// Start is where a new durable consumer begins. The zero Start is
// FromBeginning().
type Start struct {
	kind startKind
	seq  uint64
	time time.Time
}

type startKind uint8

const (
	startBeginning startKind = iota
	startLive
	startSequence
	startTime
)

// FromBeginning starts with the first event in the stream. Each
// aggregate's first event is then expected to be sequence 1: an
// aggregate whose first events left the stream (stream limits) or never
// reached it has them read from the history API.
func FromBeginning() Start { return Start{kind: startBeginning} }

// Live starts with the events published after the consumer is created.
func Live() Start { return Start{kind: startLive} }

// FromSequence starts at the given stream sequence (1 is the first).
func FromSequence(seq uint64) Start { return Start{kind: startSequence, seq: seq} }

// FromTime starts with the first event stored in the stream at or after t.
func FromTime(t time.Time) Start { return Start{kind: startTime, time: t} }

// String describes the start position.
func (s Start) String() string {
	switch s.kind {
	case startLive:
		return "live"
	case startSequence:
		return fmt.Sprintf("stream sequence %d", s.seq)
	case startTime:
		return "time " + s.time.Format(time.RFC3339Nano)
	}
	return "beginning"
}

// DefaultConfig returns a Config with every default filled in; set Conn,
// Name and AggregateType. It is the log order's: for Order EventTime, set
// Order on a Config whose MaxAckPending and AckWait are zero to get the
// event-time defaults (or choose them).
func DefaultConfig() Config {
	return Config{
		Prefix:         api.DefaultPrefix,
		MaxAttempts:    DefaultMaxAttempts,
		Backoff:        Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax},
		MaxAckPending:  DefaultMaxAckPending,
		AckWait:        DefaultAckWait,
		GapTimeout:     DefaultGapTimeout,
		HistoryTimeout: DefaultHistoryTimeout,
	}
}

// withDefaults returns a copy of c with the zero fields defaulted.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.Prefix = cmp.Or(c.Prefix, d.Prefix)
	c.Stream = cmp.Or(c.Stream, api.StreamName(c.Prefix))
	c.MaxAttempts = cmp.Or(c.MaxAttempts, d.MaxAttempts)
	c.Backoff.Initial = cmp.Or(c.Backoff.Initial, d.Backoff.Initial)
	c.Backoff.Max = cmp.Or(c.Backoff.Max, max(d.Backoff.Max, c.Backoff.Initial))
	if c.Order == EventTime {
		c.SettleWindow = cmp.Or(c.SettleWindow, DefaultSettleWindow)
		c.MaxHeld = cmp.Or(c.MaxHeld, DefaultMaxHeld)
		c.MaxAckPending = cmp.Or(c.MaxAckPending, c.MaxHeld+DefaultMaxAckPending)
	}
	c.MaxAckPending = cmp.Or(c.MaxAckPending, d.MaxAckPending)
	c.AckWait = cmp.Or(c.AckWait, max(d.AckWait, 2*c.Backoff.Max, 2*c.SettleWindow))
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	c.GapTimeout = cmp.Or(c.GapTimeout, d.GapTimeout)
	c.HistoryTimeout = cmp.Or(c.HistoryTimeout, d.HistoryTimeout)
	c.Events = append([]string(nil), c.Events...)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// Validate reports the first unusable value of a Config whose defaults
// are filled in (Subscribe fills them before it validates).
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Conn == nil:
		return bad("Conn is nil")
	case !validPrefix(c.Prefix):
		return bad("Prefix %q is not a NATS subject prefix (no spaces, '*' or '>', no empty tokens)", c.Prefix)
	case !validName(c.Stream):
		return bad("Stream %q: letters, digits, '-' and '_' only", c.Stream)
	case c.Name == "":
		return bad("Name is empty: it names the durable consumer")
	case !validName(c.Name) || len(c.Name) > maxNameLen:
		return bad("Name %q: 1 to %d letters, digits, '-' and '_' (it is a consumer name and a subject token)", c.Name, maxNameLen)
	case c.MaxAttempts < 1:
		return bad("MaxAttempts %d must be at least 1", c.MaxAttempts)
	case c.Backoff.Initial <= 0 || c.Backoff.Max < c.Backoff.Initial:
		return bad("Backoff %v..%v: Initial must be positive and Max at least Initial", c.Backoff.Initial, c.Backoff.Max)
	case c.MaxAckPending < 1:
		return bad("MaxAckPending %d must be at least 1", c.MaxAckPending)
	case c.AckWait <= c.Backoff.Max:
		return bad("AckWait %v must exceed Backoff.Max %v (an event waiting for a retry would be delivered again)", c.AckWait, c.Backoff.Max)
	case c.Order != LogOrder && c.Order != EventTime:
		return bad("Order %v: LogOrder or EventTime", c.Order)
	case c.Order == LogOrder && (c.SettleWindow != 0 || c.MaxHeld != 0):
		return bad("SettleWindow %v and MaxHeld %d apply to Order EventTime only", c.SettleWindow, c.MaxHeld)
	case c.Order == EventTime && c.SettleWindow <= 0:
		return bad("SettleWindow %v must be positive", c.SettleWindow)
	case c.Order == EventTime && c.AckWait <= c.SettleWindow:
		return bad("AckWait %v must exceed SettleWindow %v (held events are not acknowledged)", c.AckWait, c.SettleWindow)
	case c.Order == EventTime && c.MaxHeld < 1:
		return bad("MaxHeld %d must be at least 1", c.MaxHeld)
	case c.Clock == nil:
		return bad("Clock is nil")
	case c.GapTimeout < 0:
		return bad("GapTimeout %v is negative (use DisableGapFill to turn gap filling off)", c.GapTimeout)
	case c.HistoryTimeout <= 0:
		return bad("HistoryTimeout %v must be positive", c.HistoryTimeout)
	case c.Group.Members < 0:
		return bad("Group.Members %d is negative", c.Group.Members)
	case c.Group.Members == 0 && c.Group.Member != 0:
		return bad("Group.Member %d without Group.Members", c.Group.Member)
	case c.Group.Members > 0 && (c.Group.Member < 0 || c.Group.Member >= c.Group.Members):
		return bad("Group.Member %d must be between 0 and %d (Members %d)", c.Group.Member, c.Group.Members-1, c.Group.Members)
	}
	if err := (model.Ref{Type: c.AggregateType, ID: "-"}).Validate(); err != nil {
		return bad("AggregateType %q: %v", c.AggregateType, err)
	}
	seen := make(map[string]bool, len(c.Events))
	for _, e := range c.Events {
		if _, err := model.ParseVersionedName(e); err != nil || strings.ContainsAny(e, ". *>\t\r\n") {
			return bad("Events: %q is not a versioned event name like \"created_0\"", e)
		}
		if seen[e] {
			return bad("Events: %q is listed twice", e)
		}
		seen[e] = true
	}
	switch c.Start.kind {
	case startSequence:
		if c.Start.seq == 0 {
			return bad("Start: FromSequence(0): stream sequences begin at 1")
		}
	case startTime:
		if c.Start.time.IsZero() {
			return bad("Start: FromTime with the zero time")
		}
	}
	return nil
}

// maxNameLen bounds Name, leaving room for the group and replay suffixes
// within JetStream's consumer name limit.
const maxNameLen = 200

// durable is the name of the subscription's consumer on the events stream.
func (c Config) durable() string {
	if c.Group.enabled() {
		return fmt.Sprintf("%s-%dof%d", c.Name, c.Group.Member, c.Group.Members)
	}
	return c.Name
}

// replayDurable is the name of the consumer of the replays, shared by the
// members of a group.
func (c Config) replayDurable() string { return c.Name + "-replay" }

// filterSubjects are the events stream subjects the consumer takes.
func (c Config) filterSubjects() []string {
	if len(c.Events) == 0 {
		return []string{api.EventSubjectPrefix(c.Prefix, c.AggregateType) + ">"}
	}
	return c.namedSubjects("*")
}

// aggregateSubjects are the subjects of aggregate id's messages among
// filterSubjects (api.EventSubject ends in the aggregate's token).
func (c Config) aggregateSubjects(id string) []string {
	tok := api.AggregateToken(c.AggregateType, id)
	if len(c.Events) == 0 {
		return []string{api.EventSubjectPrefix(c.Prefix, c.AggregateType) + "*." + tok}
	}
	return c.namedSubjects(tok)
}

// namedSubjects are the subjects of the Events names with last as their
// aggregate token.
func (c Config) namedSubjects(last string) []string {
	out := make([]string, len(c.Events))
	for i, e := range c.Events {
		out[i] = api.EventSubjectPrefix(c.Prefix, c.AggregateType) + e + "." + last
	}
	return out
}

// validName: letters, digits, '-' and '_', not empty (stream and consumer
// names, subject tokens).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// validPrefix: one or more subject tokens, without wildcards or spaces.
func validPrefix(s string) bool {
	if s == "" || strings.ContainsAny(s, " *>\t\r\n") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}
