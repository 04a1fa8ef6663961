package model_test

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/concursus-go/concursus/model"
)

// TestDecideRules covers every outcome class of Aggregate.Decide: events,
// the model's own rejections, the handler's rejections, unknown commands and
// invalid arguments.
func TestDecideRules(t *testing.T) {
	open := []string{"open", `{"owner":"ann"}`}
	closed := []string{"open", `{"owner":"ann"}`, "close", ``}
	tests := []struct {
		name  string
		given []string // command, args, command, args … run before
		cmd   string
		args  string

		wantEvents string // eventNames of the result, on success
		wantReason string // a *model.Rejection with this reason
		wantErr    error  // errors.Is target (ErrUnknownCommand, ErrInvalidArgs)
		wantMsg    string // a fragment of the error
		noHandler  bool   // the handler must not have been called
	}{
		// Creation.
		{name: "initial event creates", cmd: "open", args: `{"owner":"ann"}`, wantEvents: "1:opened_0"},
		{name: "initial then more events", cmd: "openAndDeposit", wantEvents: "1:opened_0 2:deposited_0"},
		{name: "initial and terminal in one decision", cmd: "openAndClose", wantEvents: "1:opened_0 2:closed_0"},
		{name: "non-initial event on a new aggregate", cmd: "deposit", args: `{"amount":1}`, wantReason: model.ReasonNotFound, wantMsg: "account/a1 does not exist and deposit does not create it"},
		{name: "terminal event on a new aggregate", cmd: "close", wantReason: model.ReasonNotFound},
		{name: "no events on a new aggregate", cmd: "noop", wantReason: model.ReasonNotFound},
		{name: "first event not initial on a new aggregate", cmd: "depositThenOpen", wantReason: model.ReasonNotFound},
		{name: "initial event on an existing aggregate", given: open, cmd: "open", args: `{"owner":"bob"}`, wantReason: model.ReasonAlreadyExists, wantMsg: "account/a1 already exists; open cannot create it again"},
		{name: "initial first on an existing aggregate", given: open, cmd: "openAndDeposit", wantReason: model.ReasonAlreadyExists},
		{name: "initial later on an existing aggregate", given: open, cmd: "depositThenOpen", wantReason: model.ReasonAlreadyExists},

		// Normal life.
		{name: "event on an existing aggregate", given: open, cmd: "deposit", args: `{"amount":5}`, wantEvents: "2:deposited_0"},
		{name: "no events on an existing aggregate", given: open, cmd: "noop", wantEvents: ""},
		{name: "terminal event", given: open, cmd: "close", wantEvents: "2:closed_0"},
		{name: "handler's own rejection", given: open, cmd: "deposit", args: `{"amount":1001}`, wantReason: ReasonLimit, wantMsg: "balance 0 + 1001 exceeds 1000"},

		// After the terminal event.
		{name: "terminated refuses a command", given: closed, cmd: "deposit", args: `{"amount":1}`, wantReason: model.ReasonTerminated, wantMsg: "account/a1 has ended (terminal event at 2024-03-01T12:01:00Z); deposit is refused", noHandler: true},
		{name: "terminated refuses an initial event", given: closed, cmd: "open", args: `{"owner":"ann"}`, wantReason: model.ReasonTerminated, noHandler: true},
		{name: "terminated refuses a no-op", given: closed, cmd: "noop", wantReason: model.ReasonTerminated, noHandler: true},
		{name: "terminated refuses valid args", given: closed, cmd: "deposit", args: `{"amount":5}`, wantReason: model.ReasonTerminated, noHandler: true},
		{name: "bad args are invalid even when terminated", given: closed, cmd: "deposit", args: `{"amount":"x"}`, wantErr: model.ErrInvalidArgs, noHandler: true},
		{name: "unknown command even when terminated", given: closed, cmd: "withdraw", wantErr: model.ErrUnknownCommand, noHandler: true},

		// Handlers that misbehave: reported as handler_error, nothing emitted.
		{name: "events after a terminal event", given: open, cmd: "closeThenDeposit", wantReason: model.ReasonHandlerError, wantMsg: "closeThenDeposit emitted deposited_0 after a terminal event"},
		{name: "plain error", given: open, cmd: "fail", wantReason: model.ReasonHandlerError, wantMsg: "disk on fire"},
		{name: "plain error on a new aggregate", cmd: "fail", wantReason: model.ReasonHandlerError, wantMsg: "disk on fire"},
		{name: "event of another type", given: open, cmd: "foreign", wantReason: model.ReasonHandlerError, wantMsg: `foreign emitted event pinged_0 of type "other", not defined for "account"`},
		{name: "event of another type on a new aggregate", cmd: "foreign", wantReason: model.ReasonHandlerError},
		{name: "zero Emit", given: open, cmd: "zeroEmit", wantReason: model.ReasonHandlerError, wantMsg: "zero Emit"},
		{name: "zero Emit after a valid one", given: open, cmd: "depositZeroEmit", wantReason: model.ReasonHandlerError, wantMsg: "zero Emit"},

		// Unknown commands and invalid arguments.
		{name: "unknown command", cmd: "withdraw", wantErr: model.ErrUnknownCommand, wantMsg: `"account" has no command "withdraw"`, noHandler: true},
		{name: "command of another type", given: open, cmd: "ping", wantErr: model.ErrUnknownCommand, noHandler: true},
		{name: "args do not decode", given: open, cmd: "deposit", args: `{"amount":"ten"}`, wantErr: model.ErrInvalidArgs, wantMsg: `command "deposit": field "amount": expected int, got JSON string`, noHandler: true},
		{name: "unknown argument", given: open, cmd: "deposit", args: `{"amount":1,"memo":"x"}`, wantErr: model.ErrInvalidArgs, wantMsg: `unknown field "memo"`, noHandler: true},
		{name: "trailing data in args", given: open, cmd: "deposit", args: `{"amount":1}{}`, wantErr: model.ErrInvalidArgs, wantMsg: "unexpected data", noHandler: true},
		{name: "truncated args", given: open, cmd: "deposit", args: `{"amount":1`, wantErr: model.ErrInvalidArgs, wantMsg: "truncated", noHandler: true},
		{name: "Validate with value receiver", cmd: "open", args: `{"owner":""}`, wantErr: model.ErrInvalidArgs, wantMsg: `command "open": owner is required`, noHandler: true},
		{name: "Validate with pointer receiver", given: open, cmd: "deposit", args: `{"amount":-1}`, wantErr: model.ErrInvalidArgs, wantMsg: "amount must be positive", noHandler: true},
		{name: "invalid args on a new aggregate", cmd: "deposit", args: `{"amount":0}`, wantErr: model.ErrInvalidArgs, noHandler: true},

		// Empty args mean {}.
		{name: "empty args decode as {} and are validated", cmd: "open", args: ``, wantErr: model.ErrInvalidArgs, wantMsg: "owner is required", noHandler: true},
		{name: "empty args for a command without arguments", given: open, cmd: "close", args: ``, wantEvents: "2:closed_0"},
		{name: "explicit {} args", given: open, cmd: "close", args: `{}`, wantEvents: "2:closed_0"},
		{name: "null args", given: open, cmd: "close", args: `null`, wantEvents: "2:closed_0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAccounts(t)
			agg, _ := f.given(t, tt.given...)
			before := f.Calls
			events, err := agg.Decide(req(tt.cmd, tt.args, at(time.Hour)))

			if tt.noHandler && f.Calls != before {
				t.Errorf("the handler ran %d time(s), want none", f.Calls-before)
			}
			switch {
			case tt.wantReason != "":
				wantReason(t, err, tt.wantReason)
			case tt.wantErr != nil:
				wantInvalid(t, err, tt.wantErr)
			default:
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if got := eventNames(events); got != tt.wantEvents {
					t.Fatalf("events = %q, want %q", got, tt.wantEvents)
				}
				return
			}
			if events != nil {
				t.Errorf("events = %v along with an error, want nil", eventNames(events))
			}
			if tt.wantMsg != "" {
				wantErrContains(t, err, nil, tt.wantMsg)
			}
		})
	}
}

// BUG: on a new aggregate Decide reads emits[0].info before it checks for a
// zero Emit, so a handler returning []model.Emit{{}} for an aggregate that
// does not exist yet crashes the executor with a nil dereference instead of
// being rejected with handler_error (as it is on an existing aggregate).
func TestDecideZeroEmitOnNewAggregate(t *testing.T) {
	f := newAccounts(t)
	agg := f.Type.NewAggregate("a1")
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Decide(zeroEmit) on a new aggregate panicked: %v", p)
			}
		}()
		_, err = agg.Decide(req("zeroEmit", "", t0))
	}()
	wantReason(t, err, model.ReasonHandlerError)
}

func TestDecideNumbersFromSequence(t *testing.T) {
	f := newAccounts(t)
	agg, history := f.given(t, "open", `{"owner":"ann"}`, "deposit", `{"amount":1}`, "deposit", `{"amount":2}`)
	if eventNames(history) != "1:opened_0 2:deposited_0 3:deposited_0" {
		t.Fatalf("history = %s", eventNames(history))
	}
	if agg.Sequence() != 3 {
		t.Fatalf("Sequence() = %d, want 3", agg.Sequence())
	}
	events, err := agg.Decide(req("depositTwice", "", t0))
	if err != nil {
		t.Fatal(err)
	}
	if got := eventNames(events); got != "4:deposited_0 5:deposited_0" {
		t.Errorf("events = %s, want 4:deposited_0 5:deposited_0", got)
	}
}

func TestDecideEventFields(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	now := time.Date(2024, 3, 1, 13, 0, 0, 1_234_567, cet)              // 12:00:00.001234567 UTC
	source := time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC) // .999 after truncation
	emitAt := time.Date(2024, 1, 2, 3, 4, 5, 6_000_001, cet)

	wantNow := time.Date(2024, 3, 1, 12, 0, 0, 1_000_000, time.UTC)
	wantSource := time.Date(2024, 2, 29, 23, 59, 59, 999_000_000, time.UTC)
	wantEmitAt := time.Date(2024, 1, 2, 2, 4, 5, 6_000_000, time.UTC)

	tests := []struct {
		name string
		req  model.CommandRequest
		// Per emitted event of "stamped" (two deposits; the first one may
		// carry At and InStream).
		wantTimestamps []time.Time
		wantStreams    []string
	}{
		{
			name:           "defaults: now truncated to ms in UTC, default stream",
			req:            model.CommandRequest{Command: "stamped", Now: now},
			wantTimestamps: []time.Time{wantNow, wantNow},
			wantStreams:    []string{model.DefaultStream, model.DefaultStream},
		},
		{
			name:           "request timestamp and stream override the defaults",
			req:            model.CommandRequest{Command: "stamped", Now: now, Timestamp: source, StreamID: "sensor-7"},
			wantTimestamps: []time.Time{wantSource, wantSource},
			wantStreams:    []string{"sensor-7", "sensor-7"},
		},
		{
			name: "Emit.At and InStream override the request for one event",
			req: model.CommandRequest{Command: "stamped", Now: now, Timestamp: source, StreamID: "sensor-7",
				Args: []byte(`{"at":"` + emitAt.Format(time.RFC3339Nano) + `","stream":"replay"}`)},
			wantTimestamps: []time.Time{wantEmitAt, wantSource},
			wantStreams:    []string{"replay", "sensor-7"},
		},
		{
			name: "Emit.At and InStream override the defaults",
			req: model.CommandRequest{Command: "stamped", Now: now,
				Args: []byte(`{"at":"` + emitAt.Format(time.RFC3339Nano) + `","stream":"replay"}`)},
			wantTimestamps: []time.Time{wantEmitAt, wantNow},
			wantStreams:    []string{"replay", model.DefaultStream},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAccounts(t)
			// Opened before every stamp below, so that no event of the
			// command is stamped before the aggregate's initial event.
			agg := f.Type.NewAggregate("a1")
			run(t, agg, req("open", `{"owner":"ann"}`, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)), nil)
			r := tt.req
			r.CommandID = "c-42"
			events, err := agg.Decide(&r)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 2 {
				t.Fatalf("got %d events, want 2", len(events))
			}
			for i, e := range events {
				// Timestamps are compared with == (not Equal) on purpose:
				// the location must be UTC and the precision milliseconds.
				if e.Timestamp != tt.wantTimestamps[i] {
					t.Errorf("event %d Timestamp = %v, want %v", i, e.Timestamp, tt.wantTimestamps[i])
				}
				if e.ProcessingTime != wantNow {
					t.Errorf("event %d ProcessingTime = %v, want %v", i, e.ProcessingTime, wantNow)
				}
				if e.StreamID != tt.wantStreams[i] {
					t.Errorf("event %d StreamID = %q, want %q", i, e.StreamID, tt.wantStreams[i])
				}
				want := model.Event{
					AggregateType: "account", AggregateID: "a1", Sequence: uint64(2 + i),
					Timestamp: e.Timestamp, StreamID: e.StreamID, ProcessingTime: e.ProcessingTime,
					Name: "deposited", Version: 0, Characteristics: 0,
					Payload: []byte(`{"amount":` + strconv.Itoa(i+1) + `}`), CommandID: "c-42",
					// EventID and ProcessingID are the caller's to assign.
				}
				if !reflect.DeepEqual(e, want) {
					t.Errorf("event %d =\n%+v, want\n%+v", i, e, want)
				}
			}
		})
	}
}

func TestDecideCharacteristicsAndPayload(t *testing.T) {
	f := newAccounts(t)
	events, err := f.Type.NewAggregate("a1").Decide(req("openAndClose", "", t0))
	if err != nil {
		t.Fatal(err)
	}
	if events[0].Characteristics != model.Initial || events[1].Characteristics != model.Terminal {
		t.Errorf("characteristics = %v, %v; want initial, terminal", events[0].Characteristics, events[1].Characteristics)
	}
	if !bytes.Equal(events[0].Payload, []byte(`{"owner":"ann"}`)) || !bytes.Equal(events[1].Payload, []byte(`{}`)) {
		t.Errorf("payloads = %s, %s", events[0].Payload, events[1].Payload)
	}
	if events[0].CommandID != "cmd-openAndClose" {
		t.Errorf("CommandID = %q", events[0].CommandID)
	}
}

func TestDecideCommandIDMayBeEmpty(t *testing.T) {
	f := newAccounts(t)
	events, err := f.Type.NewAggregate("a1").Decide(&model.CommandRequest{Command: "open", Args: []byte(`{"owner":"x"}`), Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if events[0].CommandID != "" {
		t.Errorf("CommandID = %q, want empty", events[0].CommandID)
	}
}

func TestDecideSnapshot(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name  string
		given []string
		req   model.CommandRequest
		want  model.Snapshot[Account]
	}{
		{
			name: "new aggregate",
			req:  model.CommandRequest{Command: "peek", Now: time.Date(2024, 3, 1, 13, 0, 0, 5_999_999, cet)},
			want: model.Snapshot[Account]{
				Ref: model.Ref{Type: "account", ID: "a1"},
				Now: at(5 * time.Millisecond), Timestamp: at(5 * time.Millisecond),
			},
		},
		{
			name:  "existing aggregate with a source timestamp",
			given: []string{"open", `{"owner":"ann"}`, "deposit", `{"amount":7}`},
			req:   model.CommandRequest{Command: "peek", Now: at(time.Hour), Timestamp: at(time.Second + 1)},
			want: model.Snapshot[Account]{
				Ref: model.Ref{Type: "account", ID: "a1"}, Exists: true, Sequence: 2,
				Value: Account{Owner: "ann", Balance: 7},
				Now:   at(time.Hour), Timestamp: at(time.Second),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAccounts(t)
			agg, _ := f.given(t, tt.given...)
			_, err := agg.Decide(&tt.req)
			wantReason(t, err, "peeked")
			if f.LastSnapshot != tt.want {
				t.Errorf("handler saw\n%+v, want\n%+v", f.LastSnapshot, tt.want)
			}
		})
	}
}

func TestDecideDoesNotMutate(t *testing.T) {
	commands := []struct{ cmd, args string }{
		{"deposit", `{"amount":5}`},
		{"depositTwice", ""},
		{"close", ""},
		{"closeThenDeposit", ""},
		{"open", `{"owner":"bob"}`},
		{"deposit", `{"amount":5000}`},
		{"deposit", `{"amount":"x"}`},
		{"withdraw", ""},
	}
	f := newAccounts(t)
	agg, _ := f.given(t, "open", `{"owner":"ann"}`, "deposit", `{"amount":3}`)
	stateBefore, err := agg.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		r := req(c.cmd, c.args, at(time.Hour))
		first, err1 := agg.Decide(r)
		second, err2 := agg.Decide(r)
		if !reflect.DeepEqual(first, second) || (err1 == nil) != (err2 == nil) {
			t.Errorf("%s: deciding twice gave different results: %v/%v, %v/%v", c.cmd, eventNames(first), err1, eventNames(second), err2)
		}
		stateAfter, err := agg.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		if agg.Sequence() != 2 || !agg.Exists() || agg.Terminated() || !bytes.Equal(stateAfter, stateBefore) {
			t.Fatalf("after Decide(%s): seq %d exists %v terminated %v state %s; want 2 true false %s",
				c.cmd, agg.Sequence(), agg.Exists(), agg.Terminated(), stateAfter, stateBefore)
		}
	}

	// A new aggregate stays absent after a decision that would create and end it.
	fresh := f.Type.NewAggregate("a2")
	if _, err := fresh.Decide(req("openAndClose", "", t0)); err != nil {
		t.Fatal(err)
	}
	if fresh.Exists() || fresh.Terminated() || fresh.Sequence() != 0 {
		t.Errorf("after Decide on a new aggregate: exists %v terminated %v seq %d", fresh.Exists(), fresh.Terminated(), fresh.Sequence())
	}
}

func TestNewAggregate(t *testing.T) {
	f := newAccounts(t)
	agg := f.Type.NewAggregate("a9")
	if agg.Ref() != (model.Ref{Type: "account", ID: "a9"}) || agg.Sequence() != 0 || agg.Exists() || agg.Terminated() {
		t.Errorf("new aggregate: ref %v seq %d exists %v terminated %v", agg.Ref(), agg.Sequence(), agg.Exists(), agg.Terminated())
	}
	state, err := agg.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if string(state) != `{"owner":"","balance":0,"closed":false}` {
		t.Errorf("MarshalState() = %s", state)
	}
}

// unmarshalable is an event payload the codec cannot encode.
type unmarshalable struct{}

func (unmarshalable) MarshalJSON() ([]byte, error) { return nil, errors.New("no encoding for you") }

func TestDecidePayloadEncodingFails(t *testing.T) {
	typ := model.NewType[empty]("thing", model.JSON{})
	created := model.DefineEvent[unmarshalable](typ, "created", 0, model.Initial)
	model.DefineCommand(typ, "create", func(model.Snapshot[empty], empty) ([]model.Emit, error) {
		return []model.Emit{created.New(unmarshalable{})}, nil
	}, model.Creates)
	if err := typ.Err(); err != nil {
		t.Fatal(err)
	}
	events, err := typ.NewAggregate("x").Decide(req("create", "", t0))
	wantReason(t, err, model.ReasonHandlerError)
	wantErrContains(t, err, nil, "create: encoding created_0", "no encoding for you")
	if events != nil {
		t.Errorf("events = %v, want none", eventNames(events))
	}
}

// A command not marked Creates never runs its handler on an absent
// aggregate: it is refused with not_found first, whatever the handler would
// have said.
func TestCommandWithoutCreatesIsNotFoundBeforeHandler(t *testing.T) {
	typ := model.NewType[empty]("gadget", model.JSON{})
	made := model.DefineEvent[empty](typ, "made", 0, model.Initial)
	ran := false
	model.DefineCommand(typ, "make", func(model.Snapshot[empty], empty) ([]model.Emit, error) {
		return []model.Emit{made.New(empty{})}, nil
	}, model.Creates)
	model.DefineCommand(typ, "poke", func(model.Snapshot[empty], empty) ([]model.Emit, error) {
		ran = true
		return nil, model.Reject("busy", "the handler's own reason")
	})
	if err := typ.Err(); err != nil {
		t.Fatal(err)
	}
	agg := typ.NewAggregate("g1")
	_, err := agg.Decide(&model.CommandRequest{CommandID: "c1", Command: "poke", Now: time.Unix(0, 0)})
	var rej *model.Rejection
	if !errors.As(err, &rej) || rej.Reason != model.ReasonNotFound {
		t.Fatalf("poke on absent aggregate = %v, want rejection %q", err, model.ReasonNotFound)
	}
	if ran {
		t.Error("the handler ran on an absent aggregate")
	}
	events, err := agg.Decide(&model.CommandRequest{CommandID: "c2", Command: "make", Now: time.Unix(0, 0)})
	if err != nil || len(events) != 1 {
		t.Fatalf("make = %v, %v; want one event", events, err)
	}
}

// TestDecideStampsAfterTheHistory: a command without a timestamp is
// decided on the state after every event, so its events are stamped no
// earlier than the latest one in event time, whatever the clock says; a
// command with a timestamp keeps it.
func TestDecideStampsAfterTheHistory(t *testing.T) {
	last := at(10 * time.Minute)
	tests := []struct {
		name       string
		lastStream string // the stream of the latest event (stamped at last)
		req        model.CommandRequest
		want       time.Time
	}{
		{name: "clock ahead: now", lastStream: model.DefaultStream,
			req: model.CommandRequest{Now: last.Add(time.Second)}, want: last.Add(time.Second)},
		{name: "clock behind: the latest event's time (same stream, later sequence)", lastStream: model.DefaultStream,
			req: model.CommandRequest{Now: last.Add(-time.Hour)}, want: last},
		{name: "clock on it: the same", lastStream: model.DefaultStream,
			req: model.CommandRequest{Now: last}, want: last},
		{name: "clock behind, latest event in a stream that sorts after ours: one ms later", lastStream: "sensor-7",
			req: model.CommandRequest{Now: last.Add(-time.Hour), StreamID: "a-stream"}, want: last.Add(model.TimePrecision)},
		{name: "clock behind, latest event in a stream that sorts before ours: its time", lastStream: "a-stream",
			req: model.CommandRequest{Now: last.Add(-time.Hour)}, want: last},
		{name: "the request's own timestamp is kept, late or not", lastStream: model.DefaultStream,
			req: model.CommandRequest{Now: last.Add(-time.Hour), Timestamp: at(5 * time.Minute)}, want: at(5 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAccounts(t)
			agg := f.Type.NewAggregate("a1")
			history := run(t, agg, req("open", `{"owner":"ann"}`, t0), nil)
			r := req("deposit", `{"amount":5}`, last)
			r.StreamID = tt.lastStream
			history = append(history, run(t, agg, r, history)...)

			cmd := tt.req
			cmd.CommandID, cmd.Command, cmd.Args = "c-2", "deposit", []byte(`{"amount":1}`)
			events, err := agg.Decide(&cmd)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 1 || !events[0].Timestamp.Equal(tt.want) {
				t.Fatalf("events %+v, want one stamped %v", events, tt.want)
			}
			if cmd.Timestamp.IsZero() && !history[len(history)-1].TimeKey().Before(events[0].TimeKey()) {
				t.Errorf("the command's event %v sorts before the latest event %v", events[0].TimeKey(), history[len(history)-1].TimeKey())
			}
			if !events[0].ProcessingTime.Equal(model.NormalizeTime(cmd.Now)) {
				t.Errorf("ProcessingTime %v, want the clock's %v", events[0].ProcessingTime, cmd.Now)
			}
		})
	}
}
