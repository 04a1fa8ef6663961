package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

var t0 = time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)

func TestSendReturnsEvents(t *testing.T) {
	n, lb := startNode(t, "")
	c := client.New(testsupport.Connect(t, n.ClientURL()), fast)
	ctx := context.Background()

	// Created before t0: the screw-in below is stamped t0, and a command
	// stamped before the aggregate's initial event is refused.
	res, err := client.Send(ctx, c, lb.Create, "b1", lightbulb.CreateArgs{Wattage: 60}, client.WithTimestamp(t0.Add(-time.Hour)))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Ref != (model.Ref{Type: "lightbulb", ID: "b1"}) || res.Sequence != 1 || res.Attempts != 1 || res.Duplicate || res.CommandID == "" {
		t.Fatalf("result %+v", res)
	}
	if len(res.Events) != 1 || !lb.Created.Is(&res.Events[0]) || res.Events[0].CommandID != res.CommandID {
		t.Fatalf("events %+v", res.Events)
	}
	p, _, err := lb.Created.Decode(&res.Events[0])
	if err != nil || p.Wattage != 60 {
		t.Fatalf("created payload %+v, %v", p, err)
	}

	// Options reach the events; the same command id again is a duplicate.
	opts := []client.SendOption{client.WithCommandID("screw-1"), client.WithTimestamp(t0.In(time.FixedZone("CET", 3600))), client.WithStream("sensor-2")}
	res, err = client.Send(ctx, c, lb.ScrewIn, "b1", lightbulb.ScrewInArgs{Location: "hall"}, opts...)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	e := res.Events[0]
	if res.CommandID != "screw-1" || e.CommandID != "screw-1" || !e.Timestamp.Equal(t0) || e.StreamID != "sensor-2" || res.Sequence != 2 {
		t.Fatalf("result %+v, event %+v", res, e)
	}
	again, err := client.Send(ctx, c, lb.ScrewIn, "b1", lightbulb.ScrewInArgs{Location: "hall"}, opts...)
	if err != nil {
		t.Fatalf("Send again: %v", err)
	}
	if !again.Duplicate || again.Sequence != 2 || testsupport.MustJSON(t, again.Events) != testsupport.MustJSON(t, res.Events) {
		t.Fatalf("repeat with the same command id: %+v", again)
	}

	// Two events from one command.
	if _, err := client.Send(ctx, c, lb.SwitchOn, "b1", lightbulb.NoArgs{}); err != nil {
		t.Fatal(err)
	}
	res, err = client.Send(ctx, c, lb.Unscrew, "b1", lightbulb.NoArgs{})
	if err != nil || len(res.Events) != 2 || res.Sequence != 5 {
		t.Fatalf("unscrew a lit bulb: %+v, %v", res, err)
	}
}

func TestErrorsMatchSentinels(t *testing.T) {
	n, lb := startNode(t, "")
	c := client.New(testsupport.Connect(t, n.ClientURL()), fast)
	ctx := context.Background()
	if _, err := client.Send(ctx, c, lb.Create, "b1", lightbulb.CreateArgs{Wattage: 60}); err != nil {
		t.Fatal(err)
	}

	_, err := client.Send(ctx, c, lb.SwitchOn, "b1", lightbulb.NoArgs{}, client.WithCommandID("on-1"))
	if !errors.Is(err, client.ErrRejected) {
		t.Fatalf("switchOn before screwIn: %v, want ErrRejected", err)
	}
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != api.CodeRejected || ce.Reason != lightbulb.ReasonNotScrewedIn ||
		ce.CommandID != "on-1" || ce.Attempts != 1 || ce.Message == "" {
		t.Fatalf("rejection %+v", ce)
	}
	if errors.Is(err, client.ErrInvalidRequest) || errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("a rejection matches another sentinel: %v", err)
	}

	for _, tc := range []struct {
		name    string
		send    func() error
		want    error
		mention string
	}{
		{"invalid arguments", func() error {
			_, err := client.Send(ctx, c, lb.Create, "b2", lightbulb.CreateArgs{Wattage: 0})
			return err
		}, client.ErrInvalidRequest, "wattage"},
		{"unknown command", func() error {
			_, err := c.SendRaw(ctx, "lightbulb", "b1", "explode", nil)
			return err
		}, client.ErrUnknownCommand, "explode"},
		{"unknown aggregate type", func() error {
			_, err := c.SendRaw(ctx, "toaster", "t1", "toast", json.RawMessage(`{}`))
			return err
		}, client.ErrUnknownAggregateType, "toaster"},
		{"bad timestamp", func() error {
			_, err := client.Send(ctx, c, lb.Create, "b3", lightbulb.CreateArgs{Wattage: 60}, client.WithTimestamp(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)))
			return err
		}, client.ErrInvalidRequest, "range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.send()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("%q does not mention %q", err, tc.mention)
			}
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Attempts != 1 || ce.CommandID == "" {
				t.Fatalf("error %+v: want one attempt and the command id", ce)
			}
		})
	}
}

func TestQuery(t *testing.T) {
	n, lb := startNode(t, "")
	c := client.New(testsupport.Connect(t, n.ClientURL()), fast)
	ctx := context.Background()
	at := func(d time.Duration) client.SendOption { return client.WithTimestamp(t0.Add(d)) }
	must := func(_ *client.Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(client.Send(ctx, c, lb.Create, "q1", lightbulb.CreateArgs{Wattage: 60}, at(0)))
	must(client.Send(ctx, c, lb.ScrewIn, "q1", lightbulb.ScrewInArgs{Location: "hall"}, at(time.Minute)))
	must(client.Send(ctx, c, lb.SwitchOn, "q1", lightbulb.NoArgs{}, at(2*time.Minute)))
	must(client.Send(ctx, c, lb.SwitchOff, "q1", lightbulb.NoArgs{}, at(2*time.Minute+1500*time.Millisecond)))

	b, st, err := client.QueryAs[lightbulb.Bulb](ctx, c, "lightbulb", "q1")
	if err != nil || !st.Exists || st.Sequence != 4 || b != (lightbulb.Bulb{Wattage: 60, Location: "hall", ScrewedIn: true}) {
		t.Fatalf("state %+v %+v %v", b, st, err)
	}
	u, _, err := client.QueryAs[lightbulb.Usage](ctx, c, "lightbulb", "q1", client.View("usage"))
	if err != nil || u.OnMillis != 1500 || u.Switches != 1 {
		t.Fatalf("usage %+v %v", u, err)
	}
	b, st, err = client.QueryAs[lightbulb.Bulb](ctx, c, "lightbulb", "q1", client.AsOf(t0.Add(2*time.Minute)))
	if err != nil || st.Sequence != 0 || st.Prefix == nil || st.Prefix.Events != 3 || !b.On {
		t.Fatalf("as of 2m: %+v %+v %v", b, st, err)
	}
	st, err = c.Query(ctx, "lightbulb", "nobody")
	if err != nil || st.Exists || st.Sequence != 0 {
		t.Fatalf("absent aggregate: %+v %v", st, err)
	}
	if _, err := c.Query(ctx, "lightbulb", "q1", client.View("wattHours")); !errors.Is(err, client.ErrInvalidRequest) {
		t.Fatalf("unknown view: %v", err)
	}
	if _, err := c.Query(ctx, "toaster", "q1"); !errors.Is(err, client.ErrUnknownAggregateType) {
		t.Fatalf("unknown type: %v", err)
	}
}

// TestRetryUntilNodeStarts: with no node serving, the request meets no
// responders and is retried with the same command id until a node comes up;
// the command then takes effect exactly once.
func TestRetryUntilNodeStarts(t *testing.T) {
	s := testsupport.NATS(t)
	nc := testsupport.Connect(t, s.ClientURL())
	c := client.New(nc, fast)
	lb := lightbulb.Define()

	type outcome struct {
		res *client.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := client.Send(context.Background(), c, lb.Create, "late", lightbulb.CreateArgs{Wattage: 60}, client.WithCommandID("late-1"))
		done <- outcome{res, err}
	}()
	// Three requests out means at least two retries after "no responders".
	testsupport.Eventually(t, 5*time.Second, "the client to retry", func() bool { return nc.Stats().OutMsgs >= 3 })
	select {
	case o := <-done:
		t.Fatalf("Send returned while no node was serving: %+v %v", o.res, o.err)
	default:
	}

	n, _ := startNode(t, s.ClientURL())
	var o outcome
	select {
	case o = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send did not return after the node started")
	}
	if o.err != nil {
		t.Fatalf("Send: %v", o.err)
	}
	if o.res.Attempts < 3 || o.res.CommandID != "late-1" || o.res.Sequence != 1 || o.res.Duplicate {
		t.Fatalf("result %+v", o.res)
	}
	ctx := context.Background()
	if last, err := n.EventLog().LastSequence(ctx, o.res.Ref); err != nil || last != 1 {
		t.Fatalf("event log at %d (%v), want 1", last, err)
	}
	if rec, err := n.CommandLog().Get(ctx, "late-1"); err != nil || rec.Outcome != commandlog.Accepted || rec.LastSequence != 1 {
		t.Fatalf("command log: %+v %v", rec, err)
	}
}

// TestRetryAfterUnavailable: a reply "unavailable" is retried, with the same
// command id, and the next attempt's success is the result.
func TestRetryAfterUnavailable(t *testing.T) {
	n, lb := startNode(t, "")
	nc := testsupport.Connect(t, n.ClientURL())
	fwd := testsupport.Connect(t, n.ClientURL())
	f := newFake(t, nc, "fake", func(attempt int, m *nats.Msg) []byte {
		if attempt == 1 {
			return errorReply(api.CodeUnavailable, "")
		}
		return forward(t, fwd, m)
	})
	c := client.New(nc, client.Options{Prefix: "fake", MinBackoff: fast.MinBackoff, MaxBackoff: fast.MaxBackoff, Timeout: 2 * time.Second})

	res, err := client.Send(context.Background(), c, lb.Create, "r1", lightbulb.CreateArgs{Wattage: 60})
	if err != nil {
		t.Fatalf("Send: %v (attempts seen by the fake: %d)", err, len(f.seen()))
	}
	seen := f.seen()
	if len(seen) != 2 || res.Attempts != 2 {
		t.Fatalf("%d requests seen, result says %d attempts; want 2", len(seen), res.Attempts)
	}
	if seen[0].CommandID == "" || seen[0].CommandID != seen[1].CommandID || res.CommandID != seen[0].CommandID {
		t.Fatalf("command ids %q, %q, result %q: a retry must reuse the id", seen[0].CommandID, seen[1].CommandID, res.CommandID)
	}
	if len(res.Events) != 1 || res.Sequence != 1 {
		t.Fatalf("result %+v", res)
	}
}

// TestRetryAfterLostReply: the first attempt ran on the node but its reply
// was lost (the fake answers "timeout" instead); the retry carries the same
// command id, so the node answers with the recorded outcome and the command
// took effect once.
func TestRetryAfterLostReply(t *testing.T) {
	n, lb := startNode(t, "")
	nc := testsupport.Connect(t, n.ClientURL())
	fwd := testsupport.Connect(t, n.ClientURL())
	firstReply := make(chan []byte, 1)
	newFake(t, nc, "fake", func(attempt int, m *nats.Msg) []byte {
		if attempt == 1 {
			firstReply <- forward(t, fwd, m)
			return errorReply(api.CodeTimeout, "")
		}
		return forward(t, fwd, m)
	})
	c := client.New(nc, client.Options{Prefix: "fake", MinBackoff: fast.MinBackoff, MaxBackoff: fast.MaxBackoff, Timeout: 2 * time.Second})

	res, err := client.Send(context.Background(), c, lb.Create, "r2", lightbulb.CreateArgs{Wattage: 60})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	first := <-firstReply
	var orig api.Reply
	if err := json.Unmarshal(first, &orig); err != nil || !orig.OK {
		t.Fatalf("first attempt on the node: %s %v", first, err)
	}
	if !res.Duplicate || res.Attempts != 2 || res.CommandID != orig.CommandID || testsupport.MustJSON(t, res.Events) != testsupport.MustJSON(t, orig.Events) {
		t.Fatalf("result %+v, want the first attempt's outcome %s", res, first)
	}
	if last, err := n.EventLog().LastSequence(context.Background(), res.Ref); err != nil || last != 1 {
		t.Fatalf("event log at %d (%v): the retry ran the command again", last, err)
	}
}

// TestRetryableCodesAreRetried: conflict, unavailable and timeout replies
// are retried, every time with the same command id, until the deadline;
// the last error is returned.
func TestRetryableCodesAreRetried(t *testing.T) {
	s := testsupport.NATS(t)
	nc := testsupport.Connect(t, s.ClientURL())
	for _, tc := range []struct {
		code api.Code
		want error
	}{
		{api.CodeConflict, client.ErrConflict},
		{api.CodeUnavailable, client.ErrUnavailable},
		{api.CodeTimeout, client.ErrTimeout},
	} {
		t.Run(string(tc.code), func(t *testing.T) {
			prefix := "retry-" + string(tc.code)
			f := newFake(t, nc, prefix, func(int, *nats.Msg) []byte { return errorReply(tc.code, "") })
			c := client.New(nc, client.Options{Prefix: prefix, MinBackoff: fast.MinBackoff, MaxBackoff: fast.MaxBackoff})
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := c.SendRaw(ctx, "lightbulb", "b1", "switchOn", nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Attempts < 2 {
				t.Fatalf("error %+v: want a *client.Error after more than one attempt", err)
			}
			// The last attempt, cut short by the deadline, may reach the
			// fake after SendRaw returned: wait for it rather than race it.
			testsupport.Eventually(t, 5*time.Second, "the fake to see every attempt", func() bool { return len(f.seen()) >= ce.Attempts })
			seen := f.seen()
			if ce.Attempts != len(seen) {
				t.Fatalf("error %+v says %d attempts, the fake saw %d requests: want every attempt counted", ce, ce.Attempts, len(seen))
			}
			for _, r := range seen {
				if r.CommandID != ce.CommandID || r.CommandID == "" {
					t.Fatalf("attempt with command id %q, error says %q: retries must reuse the id", r.CommandID, ce.CommandID)
				}
			}
		})
	}
}

// TestNonRetryableCodesAreNotRetried: an answer that cannot change by
// asking again is returned after one attempt.
func TestNonRetryableCodesAreNotRetried(t *testing.T) {
	s := testsupport.NATS(t)
	nc := testsupport.Connect(t, s.ClientURL())
	for _, tc := range []struct {
		code   api.Code
		reason string
		want   error
	}{
		{api.CodeInvalidRequest, "", client.ErrInvalidRequest},
		{api.CodeUnknownAggregateType, "", client.ErrUnknownAggregateType},
		{api.CodeUnknownCommand, "", client.ErrUnknownCommand},
		{api.CodeRejected, "not_screwed_in", client.ErrRejected},
		{"a_code_from_the_future", "", nil},
	} {
		t.Run(string(tc.code), func(t *testing.T) {
			prefix := "once-" + strings.ReplaceAll(string(tc.code), "_", "-")
			f := newFake(t, nc, prefix, func(int, *nats.Msg) []byte { return errorReply(tc.code, tc.reason) })
			c := client.New(nc, client.Options{Prefix: prefix, MinBackoff: fast.MinBackoff, MaxBackoff: fast.MaxBackoff, Timeout: time.Second})
			_, err := c.SendRaw(context.Background(), "lightbulb", "b1", "switchOn", nil, client.WithCommandID("once"))
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Code != tc.code || ce.Reason != tc.reason || ce.CommandID != "once" || ce.Attempts != 1 {
				t.Fatalf("error %+v (%v)", ce, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("%v does not match %v", err, tc.want)
			}
			if n := len(f.seen()); n != 1 {
				t.Fatalf("%d attempts, want 1", n)
			}
		})
	}
}

// TestDeadline: with nobody answering, Send gives up at the context's
// deadline (or Options.Timeout without one) with ErrTimeout, and each
// attempt tells the node how long it may wait.
func TestDeadline(t *testing.T) {
	s := testsupport.NATS(t)
	nc := testsupport.Connect(t, s.ClientURL())
	f := newFake(t, nc, "silent", func(int, *nats.Msg) []byte { return nil })

	check := func(t *testing.T, c *client.Client, ctx context.Context, want time.Duration) {
		t.Helper()
		start := time.Now()
		_, err := c.SendRaw(ctx, "lightbulb", "b1", "switchOn", nil)
		took := time.Since(start)
		if !errors.Is(err, client.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		if took < want-10*time.Millisecond || took > want+500*time.Millisecond {
			t.Fatalf("gave up after %v, want about %v", took, want)
		}
	}
	t.Run("context deadline", func(t *testing.T) {
		c := client.New(nc, client.Options{Prefix: "silent", Attempt: 100 * time.Millisecond, MinBackoff: fast.MinBackoff, MaxBackoff: fast.MaxBackoff})
		ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
		defer cancel()
		before := len(f.seen())
		check(t, c, ctx, 350*time.Millisecond)
		seen := f.seen()[before:]
		if len(seen) < 2 {
			t.Fatalf("%d attempts in 350ms with 100ms per attempt", len(seen))
		}
		for _, r := range seen {
			if r.TimeoutMs <= 0 || r.TimeoutMs > 100 {
				t.Fatalf("attempt announced timeoutMs %d, want 1..100", r.TimeoutMs)
			}
			if r.CommandID != seen[0].CommandID {
				t.Fatalf("command ids %q and %q", seen[0].CommandID, r.CommandID)
			}
		}
	})
	t.Run("Options.Timeout", func(t *testing.T) {
		c := client.New(nc, client.Options{Prefix: "silent", Timeout: 200 * time.Millisecond})
		check(t, c, context.Background(), 200*time.Millisecond)
	})
	t.Run("cancelled", func(t *testing.T) {
		c := client.New(nc, client.Options{Prefix: "silent"})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.SendRaw(ctx, "lightbulb", "b1", "switchOn", nil)
		if err == nil || time.Since(start) > time.Second {
			t.Fatalf("cancelled Send returned %v after %v", err, time.Since(start))
		}
	})
}

// TestNoNodeAtAll: with no node at all, Send keeps retrying until the
// deadline and reports the cluster unavailable.
func TestNoNodeAtAll(t *testing.T) {
	s := testsupport.NATS(t)
	nc := testsupport.Connect(t, s.ClientURL())
	c := client.New(nc, client.Options{MinBackoff: fast.MinBackoff, MaxBackoff: fast.MaxBackoff, Timeout: 150 * time.Millisecond})
	_, err := c.SendRaw(context.Background(), "lightbulb", "b1", "switchOn", nil)
	var ce *client.Error
	if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &ce) || ce.Attempts < 2 || !strings.Contains(ce.Message, "no node") {
		t.Fatalf("got %+v (%v), want ErrUnavailable after several attempts", ce, err)
	}
}

// TestOversizedRequest: a request above the node's limit gets the node's
// typed invalid_request; one above the NATS server's own limit never leaves
// the client, and is reported the same way.
func TestOversizedRequest(t *testing.T) {
	n, lb := startNode(t, "")
	c := client.New(testsupport.Connect(t, n.ClientURL()), fast)
	for _, size := range []int{2 << 20, 8 << 20} { // node limit 1 MiB; embedded server limit 2 MiB + 64 KiB
		_, err := client.Send(context.Background(), c, lb.ScrewIn, "big", lightbulb.ScrewInArgs{Location: strings.Repeat("x", size)})
		var ce *client.Error
		if !errors.Is(err, client.ErrInvalidRequest) || !errors.As(err, &ce) || ce.Attempts != 1 {
			t.Fatalf("%d bytes: %v", size, err)
		}
	}
}
