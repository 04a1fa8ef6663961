package model_test

import (
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/model"
)

// The tests in this package share one small domain, an account:
//
//	opened (initial) → deposited* → closed (terminal)
//
// Besides the well-behaved commands (open, deposit, close) it defines
// deliberately misbehaving ones, so that every rule Decide enforces on
// handlers can be exercised by name.

// t0 is the fixed instant the tests count from; nothing reads the wall clock.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

type Account struct {
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
	Closed  bool   `json:"closed"`
}

// Activity is the second view: counts and amounts, from the same history.
type Activity struct {
	Events   int       `json:"events"`
	Deposits []int     `json:"deposits"`
	LastAt   time.Time `json:"lastAt"`
}

type (
	Opened struct {
		Owner string `json:"owner"`
	}
	Deposited struct {
		Amount int `json:"amount"`
	}
	Closed struct{}
	Pinged struct{}
)

type OpenArgs struct {
	Owner string `json:"owner"`
}

// Validate has a value receiver.
func (a OpenArgs) Validate() error {
	if a.Owner == "" {
		return errors.New("owner is required")
	}
	return nil
}

type DepositArgs struct {
	Amount int `json:"amount"`
}

// Validate has a pointer receiver: Decide must find it too.
func (a *DepositArgs) Validate() error {
	if a.Amount <= 0 {
		return errors.New("amount must be positive")
	}
	return nil
}

type StampArgs struct {
	At     time.Time `json:"at"`
	Stream string    `json:"stream"`
}

type NoArgs struct{}

// ReasonLimit is the account domain's own rejection reason.
const ReasonLimit = "limit_exceeded"

type accountFixture struct {
	Type     *model.Type[Account]
	Opened   *model.EventType[Opened]
	Deposit  *model.EventType[Deposited]
	Closed   *model.EventType[Closed]
	Activity *model.View[Activity]

	// Other is a second, valid aggregate type; Pinged is its event.
	Other  *model.Type[struct{}]
	Pinged *model.EventType[Pinged]

	// LastSnapshot is what the "peek" command saw.
	LastSnapshot model.Snapshot[Account]
	// Calls counts handler invocations of every command.
	Calls int
}

func newAccounts(t testing.TB) *accountFixture {
	t.Helper()
	f := &accountFixture{}

	f.Other = model.NewType[struct{}]("other", model.JSON{})
	f.Pinged = model.DefineEvent[Pinged](f.Other, "pinged", 0, model.Initial)
	model.DefineCommand(f.Other, "ping", func(model.Snapshot[struct{}], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Pinged.New(Pinged{})}, nil
	}, model.Creates)

	a := model.NewType[Account]("account", model.JSON{})
	f.Type = a
	f.Opened = model.DefineEvent[Opened](a, "opened", 0, model.Initial)
	f.Deposit = model.DefineEvent[Deposited](a, "deposited", 0, 0)
	f.Closed = model.DefineEvent[Closed](a, "closed", 0, model.Terminal)

	s := a.State()
	model.On(s, f.Opened, func(v *Account, e model.Recorded[Opened]) { v.Owner = e.Payload.Owner })
	model.On(s, f.Deposit, func(v *Account, e model.Recorded[Deposited]) { v.Balance += e.Payload.Amount })
	model.On(s, f.Closed, func(v *Account, _ model.Recorded[Closed]) { v.Closed = true })

	f.Activity = model.NewView[Activity](a, "activity")
	model.On(f.Activity, f.Opened, func(v *Activity, e model.Recorded[Opened]) { v.Events++; v.LastAt = e.Timestamp })
	model.On(f.Activity, f.Deposit, func(v *Activity, e model.Recorded[Deposited]) {
		v.Events++
		v.LastAt = e.Timestamp
		v.Deposits = append(v.Deposits, e.Payload.Amount)
	})
	// closed has no applier in the activity view: it leaves the view unchanged.

	def := func(name string, h model.Handler[Account, NoArgs]) {
		model.DefineCommand(a, name, func(s model.Snapshot[Account], args NoArgs) ([]model.Emit, error) {
			f.Calls++
			return h(s, args)
		}, model.Creates)
	}
	model.DefineCommand(a, "open", func(s model.Snapshot[Account], args OpenArgs) ([]model.Emit, error) {
		f.Calls++
		return []model.Emit{f.Opened.New(Opened(args))}, nil
	}, model.Creates)
	model.DefineCommand(a, "deposit", func(s model.Snapshot[Account], args DepositArgs) ([]model.Emit, error) {
		f.Calls++
		if s.Value.Balance+args.Amount > 1000 {
			return nil, model.Reject(ReasonLimit, "balance %d + %d exceeds 1000", s.Value.Balance, args.Amount)
		}
		return []model.Emit{f.Deposit.New(Deposited(args))}, nil
	}, model.Creates)
	def("close", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Closed.New(Closed{})}, nil
	})
	// Commands that emit several events or misbehave on purpose.
	def("openAndDeposit", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Opened.New(Opened{Owner: "ann"}), f.Deposit.New(Deposited{Amount: 5})}, nil
	})
	def("openAndClose", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Opened.New(Opened{Owner: "ann"}), f.Closed.New(Closed{})}, nil
	})
	def("depositTwice", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Deposit.New(Deposited{Amount: 1}), f.Deposit.New(Deposited{Amount: 2})}, nil
	})
	def("depositThenOpen", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Deposit.New(Deposited{Amount: 1}), f.Opened.New(Opened{Owner: "ann"})}, nil
	})
	def("closeThenDeposit", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Closed.New(Closed{}), f.Deposit.New(Deposited{Amount: 1})}, nil
	})
	def("fail", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return nil, errors.New("disk on fire")
	})
	def("foreign", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Pinged.New(Pinged{})}, nil
	})
	def("zeroEmit", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{{}}, nil
	})
	def("depositZeroEmit", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) {
		return []model.Emit{f.Deposit.New(Deposited{Amount: 1}), {}}, nil
	})
	def("noop", func(model.Snapshot[Account], NoArgs) ([]model.Emit, error) { return nil, nil })
	def("peek", func(s model.Snapshot[Account], _ NoArgs) ([]model.Emit, error) {
		f.LastSnapshot = s
		return nil, model.Reject("peeked", "peek never emits")
	})
	model.DefineCommand(a, "stamped", func(s model.Snapshot[Account], args StampArgs) ([]model.Emit, error) {
		f.Calls++
		e := f.Deposit.New(Deposited{Amount: 1})
		if !args.At.IsZero() {
			e = e.At(args.At)
		}
		if args.Stream != "" {
			e = e.InStream(args.Stream)
		}
		return []model.Emit{e, f.Deposit.New(Deposited{Amount: 2})}, nil
	}, model.Creates)

	if err := errors.Join(a.Err(), f.Other.Err()); err != nil {
		t.Fatalf("fixture definition: %v", err)
	}
	return f
}

// req is a command request processed at now.
func req(command, args string, now time.Time) *model.CommandRequest {
	return &model.CommandRequest{CommandID: "cmd-" + command, Command: command, Args: []byte(args), Now: now}
}

// run decides one command and applies its events, as the executor does
// after appending them; before is the history appended so far (the events
// in log order). A late event is absorbed at once with Refold (see
// absorb). It fails the test if anything fails.
func run(t *testing.T, agg model.Aggregate, r *model.CommandRequest, before []model.Event) []model.Event {
	t.Helper()
	events, err := agg.Decide(r)
	if err != nil {
		t.Fatalf("Decide(%s %s): %v", r.Command, r.Args, err)
	}
	for i := range events {
		if _, err := agg.Apply(&events[i]); err != nil {
			t.Fatalf("Apply(%s seq %d): %v", events[i].VersionedName(), events[i].Sequence, err)
		}
		absorb(t, agg, append(slices.Clip(before), events[:i+1]...))
	}
	return events
}

// absorb brings a stale aggregate up to date, as the executor does after a
// late event: it feeds Refold the appended events (in any order: they are
// sorted here, as an event-time read of the log returns them) whose keys
// sort after the checkpoint key Stale names. A fresh aggregate is left
// alone.
func absorb(t testing.TB, agg model.Aggregate, appended []model.Event) {
	t.Helper()
	after, stale := agg.Stale()
	if !stale {
		return
	}
	if err := agg.Refold(seqOf(keysAfter(after, sortedByTime(appended)), nil)); err != nil {
		t.Fatalf("Refold after %v: %v", after, err)
	}
	if _, stale := agg.Stale(); stale {
		t.Fatalf("still stale after Refold")
	}
}

// sortedByTime returns a copy of events in event-time order.
func sortedByTime(events []model.Event) []model.Event {
	sorted := slices.Clone(events)
	slices.SortFunc(sorted, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
	return sorted
}

// keysAfter returns the events of a sorted history whose keys sort
// strictly after k (all of them for the zero key).
func keysAfter(k model.TimeKey, sorted []model.Event) []model.Event {
	i := sort.Search(len(sorted), func(i int) bool { return k.Before(sorted[i].TimeKey()) })
	return sorted[i:]
}

// given returns an aggregate "a1" with the given commands (name and JSON
// args, alternating) run at t0, t0+1m, … and the history they produced.
func (f *accountFixture) given(t *testing.T, cmds ...string) (model.Aggregate, []model.Event) {
	t.Helper()
	if len(cmds)%2 != 0 {
		t.Fatalf("given: odd number of arguments %q", cmds)
	}
	agg := f.Type.NewAggregate("a1")
	var history []model.Event
	for i := 0; i < len(cmds); i += 2 {
		history = append(history, run(t, agg, req(cmds[i], cmds[i+1], at(time.Duration(i/2)*time.Minute)), history)...)
	}
	return agg, history
}

// standardHistory is open(ann) at t0, deposit 10 at t0+1m, deposit 20 at
// t0+2m, close at t0+3m.
func (f *accountFixture) standardHistory(t *testing.T) []model.Event {
	t.Helper()
	_, h := f.given(t,
		"open", `{"owner":"ann"}`,
		"deposit", `{"amount":10}`,
		"deposit", `{"amount":20}`,
		"close", ``)
	return h
}

// eventNames renders events as "seq:name_version" for compact comparisons.
func eventNames(events []model.Event) string {
	parts := make([]string, len(events))
	for i := range events {
		parts[i] = strconv.FormatUint(events[i].Sequence, 10) + ":" + events[i].VersionedName().String()
	}
	return strings.Join(parts, " ")
}

// wantReason fails the test unless err is a *model.Rejection with reason.
func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var rej *model.Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("err = %v (%T), want a *model.Rejection with reason %q", err, err, reason)
	}
	if rej.Reason != reason {
		t.Fatalf("rejection reason = %q (%v), want %q", rej.Reason, rej, reason)
	}
}

// wantInvalid fails the test unless err wraps want (ErrInvalidArgs or
// another bad-input error) and is not a *model.Rejection: bad input is
// refused, never rejected.
func wantInvalid(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want errors.Is %v", err, want)
	}
	var rej *model.Rejection
	if errors.As(err, &rej) {
		t.Errorf("err = %v is also a *Rejection; bad input is not a rejection", err)
	}
}

// wantErrContains fails the test unless err is non-nil, matches target (if
// not nil) and mentions every fragment.
func wantErrContains(t *testing.T, err, target error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want an error mentioning %q", fragments)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("err = %v, want errors.Is(err, %v)", err, target)
	}
	for _, frag := range fragments {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("err = %q, want it to mention %q", err, frag)
		}
	}
}

// Copies of an event with one field changed, for corrupt histories.
func withVersion(e model.Event, v int) model.Event    { e.Version = v; return e }
func withType(e model.Event, typ string) model.Event  { e.AggregateType = typ; return e }
func withID(e model.Event, id string) model.Event     { e.AggregateID = id; return e }
func withName(e model.Event, name string) model.Event { e.Name = name; return e }
func withSeq(e model.Event, seq uint64) model.Event   { e.Sequence = seq; return e }
func withPayload(e model.Event, p string) model.Event { e.Payload = []byte(p); return e }

// withTime returns a copy of e stamped ts, in stream stream if it is not
// empty.
func withTime(e model.Event, ts time.Time, stream string) model.Event {
	e.Timestamp = ts
	if stream != "" {
		e.StreamID = stream
	}
	return e
}
