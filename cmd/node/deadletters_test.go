package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/subscription"
)

// startJetStream starts an embedded NATS server with JetStream on a free
// port, and creates the events stream of the default prefix.
func startJetStream(t *testing.T) (*server.Server, *nats.Conn) {
	t.Helper()
	s := testsupport.NATS(t, testsupport.JetStream())
	nc := testsupport.Connect(t, s.ClientURL())
	if _, err := eventbus.EnsureStream(context.Background(), nc, api.DefaultPrefix, eventbus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return s, nc
}

// runDLCmd runs `node deadletters args…` and returns its exit code, standard output and standard error.
func runDLCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"deadletters"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// `node deadletters list` shows what a subscription dead-lettered, and
// `replay` hands it back to the subscription, fixed meanwhile.
func TestDeadLettersListAndReplay(t *testing.T) {
	s, nc := startJetStream(t)
	url := s.ClientURL()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		e := model.Event{AggregateType: "lightbulb", AggregateID: "b1", Sequence: seq, Name: "created",
			Payload: json.RawMessage(`{}`), EventID: fmt.Sprintf("b1-%d", seq)}
		m, err := eventbus.Message(api.DefaultPrefix, &e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	broken := map[uint64]bool{2: true, 3: true}
	var handled []string
	var h subscription.Handlers
	h.CatchAll(func(_ context.Context, e subscription.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if broken[e.Sequence] {
			return fmt.Errorf("cannot bill %s#%d:\nthe ledger is closed", e.AggregateID, e.Sequence)
		}
		handled = append(handled, fmt.Sprintf("%s#%d/%s", e.AggregateID, e.Sequence, e.Source))
		return nil
	})
	sub, err := subscription.Subscribe(context.Background(), subscription.Config{
		Conn: nc, Name: "billing", AggregateType: "lightbulb", MaxAttempts: 2,
		Backoff: subscription.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		Logger:  slog.New(slog.DiscardHandler),
	}, &h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	testsupport.EventuallyErr(t, 5*time.Second, "two dead letters", func() error {
		if st := sub.Stats(); st.DeadLettered < 2 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})

	code, out, errOut := runDLCmd(t, "list", "--consumer", "billing", "--nats-url", url)
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, errOut)
	}
	t.Logf("node deadletters list:\n%s", out)
	for _, want := range []string{"2 dead letters for consumer billing", "SEQ", "lightbulb/b1", "created_0",
		"cannot bill b1#2: the ledger is closed", "cannot bill b1#3"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runDLCmd(t, "list", "--consumer", "billing", "--nats-url", url, "--json")
	var letters []subscription.DeadLetter
	if code != 0 || json.Unmarshal([]byte(out), &letters) != nil || len(letters) != 2 {
		t.Fatalf("list --json: exit %d, %d letters\n%s\n%s", code, len(letters), out, errOut)
	}
	if d := letters[0]; d.Event == nil || d.Event.Sequence != 2 || d.Attempts != 2 || d.Consumer != "billing" || d.StreamSeq != 2 {
		t.Errorf("first dead letter %+v", d)
	}

	// Replay the one for b1#3, fixed; b1#2 stays.
	mu.Lock()
	broken[3] = false
	mu.Unlock()
	code, out, errOut = runDLCmd(t, "replay", "--consumer", "billing", "--nats-url", url, "--seq", fmt.Sprint(letters[1].Seq))
	if code != 0 || !strings.Contains(out, "replayed 1 dead letter of billing on concursus.replay.billing") {
		t.Fatalf("replay --seq: exit %d\n%s%s", code, out, errOut)
	}
	waitHandled := func(n int) {
		t.Helper()
		testsupport.EventuallyErr(t, 5*time.Second, fmt.Sprintf("%d events handled", n), func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(handled) < n {
				return fmt.Errorf("%d handled", len(handled))
			}
			return nil
		})
	}
	waitHandled(2)
	_, out, _ = runDLCmd(t, "list", "--consumer", "billing", "--nats-url", url)
	if !strings.Contains(out, "1 dead letter for consumer billing") || strings.Contains(out, "b1#3") {
		t.Errorf("after replaying one:\n%s", out)
	}

	// Replay the rest, fixed too.
	mu.Lock()
	broken[2] = false
	mu.Unlock()
	code, out, errOut = runDLCmd(t, "replay", "--consumer", "billing", "--nats-url", url)
	if code != 0 || !strings.Contains(out, "replayed 1 dead letter") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	waitHandled(3)
	mu.Lock()
	if want := "b1#1/stream b1#3/replay b1#2/replay"; strings.Join(handled, " ") != want {
		t.Errorf("handled %v, want %s", handled, want)
	}
	mu.Unlock()
	code, out, _ = runDLCmd(t, "list", "--consumer", "billing", "--nats-url", url)
	if code != 0 || !strings.Contains(out, "no dead letters for consumer billing") {
		t.Errorf("after replaying all: exit %d\n%s", code, out)
	}
	code, out, _ = runDLCmd(t, "list", "--consumer", "billing", "--nats-url", url, "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("list --json of none: exit %d, %q", code, out)
	}
}

// Usage errors exit 2; what cannot be found, 1, saying what to check.
func TestDeadLettersCommandFailures(t *testing.T) {
	s, _ := startJetStream(t)
	url := s.ClientURL()
	// A subscription has run: the dead-letter stream exists, empty.
	if _, err := subscription.EnsureDeadLetterStream(context.Background(), testsupport.Connect(t, url), api.DefaultPrefix); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		mention string
	}{
		{"no subcommand", nil, 2, "Usage: node deadletters list"},
		{"help", []string{"--help"}, 0, "Usage: node deadletters list"},
		{"list help", []string{"list", "--help"}, 0, "-consumer"},
		{"unknown subcommand", []string{"purge"}, 2, `unknown subcommand "purge"`},
		{"no consumer", []string{"list", "--nats-url", url}, 2, "--consumer is required"},
		{"bad seq", []string{"replay", "--consumer", "billing", "--seq", "x"}, 2, `"x" is not a dead-letter sequence`},
		{"seq on list", []string{"list", "--consumer", "billing", "--seq", "1"}, 2, "flag provided but not defined: -seq"},
		{"bad prefix", []string{"list", "--consumer", "billing", "--prefix", "a.>"}, 2, "not a NATS subject prefix"},
		{"stray argument", []string{"list", "--consumer", "billing", "all"}, 2, "unexpected arguments"},
		{"no NATS", []string{"list", "--consumer", "billing", "--nats-url", "nats://127.0.0.1:1"}, 1, "connecting to NATS at nats://127.0.0.1:1"},
		{"other prefix", []string{"list", "--consumer", "billing", "--nats-url", url, "--prefix", "other"}, 1, `no subscription has run under prefix "other"`},
		{"unknown seq", []string{"replay", "--consumer", "billing", "--nats-url", url, "--seq", "7,8"}, 1, "sequence 7 is no dead letter of billing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runDLCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.mention) {
				t.Errorf("exit %d, want %d; stderr (want %q):\n%s", code, tt.code, tt.mention, errOut)
			}
		})
	}
	var seqs seqList
	if err := seqs.Set("3, 5"); err != nil || seqs.String() != "3,5" {
		t.Errorf("seqList: %v, %v", seqs, err)
	}
	if err := seqs.Set("0"); err == nil {
		t.Error("seqList took sequence 0")
	}
}
