//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
)

// tracer watches, on a connection of its own, every command request the
// clients send (the queue subject), every request a node forwards to
// another (the nodes' direct subjects) and every reply the clients'
// inboxes receive, late replies to abandoned attempts included. It counts
// the replies by outcome, keeps each command's route, and flags replies a
// client must never see: a non-retryable error on a command the test
// sends correctly, or an unknown code.
//
// The clients' inboxes must be under the prefixes given to newTracer
// (nats.CustomInboxPrefix), each named by its kind ("load", "probe").
type tracer struct {
	start time.Time
	subs  []*nats.Subscription
	mu    struct {
		sync.Mutex
		counts map[string]int         // "load ok", "probe timeout", …
		bad    []string               // replies no client should see
		routes map[string][]traceStep // command id → what happened to it
	}
}

// traceStep is one message about a command.
type traceStep struct {
	at   time.Duration // since the tracer started
	what string
}

// newTracer starts tracing the commands sent under prefix; inboxes maps an
// inbox prefix ("_LOAD") to the kind of client using it ("load").
func newTracer(t *testing.T, url, prefix string, inboxes map[string]string) *tracer {
	t.Helper()
	nc := connectNATS(t, url, "tracer")
	tr := &tracer{start: time.Now()}
	tr.mu.counts = make(map[string]int)
	tr.mu.routes = make(map[string][]traceStep)
	onRequest := func(m *nats.Msg) {
		var c api.Command
		if json.Unmarshal(m.Data, &c) != nil || c.CommandID == "" {
			return
		}
		what := "sent"
		if strings.HasPrefix(m.Subject, prefix+".node.") {
			target, _, _ := strings.Cut(strings.TrimPrefix(m.Subject, prefix+".node."), ".")
			what = fmt.Sprintf("forwarded to %s (hops %s, budget %sms)", target, m.Header.Get("Concursus-Hops"), m.Header.Get("Concursus-Budget-Ms"))
		}
		tr.add(c.CommandID, what)
	}
	onReply := func(kind string) nats.MsgHandler {
		return func(m *nats.Msg) {
			var r api.Reply
			key, what := kind+" ", ""
			switch err := json.Unmarshal(m.Data, &r); {
			case err != nil:
				key += "undecodable"
				what = fmt.Sprintf("undecodable reply %q", m.Data)
			case r.Error == nil && r.OK:
				key += "ok"
				if r.Duplicate {
					key += " (duplicate)"
				}
				what = fmt.Sprintf("reply %s, sequence %d", strings.TrimPrefix(key, kind+" "), r.Sequence)
			case r.Error == nil:
				key += "not ok without an error"
				what = fmt.Sprintf("reply %s", m.Data)
			default:
				key += string(r.Error.Code)
				what = "reply " + r.Error.Error()
			}
			tr.mu.Lock()
			defer tr.mu.Unlock()
			tr.mu.counts[key]++
			if r.CommandID != "" {
				tr.addLocked(r.CommandID, what)
			}
			if r.Error == nil && r.OK {
				return
			}
			if r.Error == nil || !knownCode(r.Error.Code) || !r.Error.Code.Retryable() {
				tr.mu.bad = append(tr.mu.bad, fmt.Sprintf("%s client, command %s: %s", kind, r.CommandID, m.Data))
			}
		}
	}
	subscribe := func(subject string, h nats.MsgHandler) {
		sub, err := nc.Subscribe(subject, h)
		if err != nil {
			t.Fatal(err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			t.Fatal(err)
		}
		tr.subs = append(tr.subs, sub)
	}
	subscribe(api.CommandSubject(prefix, "*"), onRequest)
	subscribe(prefix+".node.*.cmd.*", onRequest)
	for _, inbox := range slices.Sorted(maps.Keys(inboxes)) {
		subscribe(inbox+".>", onReply(inboxes[inbox]))
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return tr
}

func knownCode(c api.Code) bool {
	switch c {
	case api.CodeInvalidRequest, api.CodeUnknownAggregateType, api.CodeUnknownCommand, api.CodeRejected,
		api.CodeConflict, api.CodeUnavailable, api.CodeTimeout:
		return true
	}
	return false
}

func (tr *tracer) add(commandID, what string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.addLocked(commandID, what)
}

func (tr *tracer) addLocked(commandID, what string) {
	tr.mu.routes[commandID] = append(tr.mu.routes[commandID], traceStep{at: time.Since(tr.start), what: what})
}

// close stops tracing once the messages already delivered are handled.
func (tr *tracer) close() {
	for _, s := range tr.subs {
		_ = s.Drain()
	}
	for _, s := range tr.subs {
		for s.IsValid() {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// route describes what happened to one command, its times relative to
// its first message.
func (tr *tracer) route(commandID string) string {
	if tr == nil {
		return "(not traced)"
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	steps := tr.mu.routes[commandID]
	if len(steps) == 0 {
		return "(never seen)"
	}
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("+%dms %s", (s.at - steps[0].at).Milliseconds(), s.what)
	}
	return strings.Join(parts, "; ")
}

// report logs the reply counts and fails the test on every reply no client
// should have seen.
func (tr *tracer) report(t *testing.T) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	keys := slices.Sorted(maps.Keys(tr.mu.counts))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, tr.mu.counts[k]))
	}
	t.Logf("replies on the clients' inboxes (every attempt, late ones too): %s", strings.Join(parts, ", "))
	for _, b := range tr.mu.bad {
		t.Errorf("reply no client should see: %s", b)
	}
}
