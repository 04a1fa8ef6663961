package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concursus-go/concursus/internal/testsupport"
)

func TestConvergeAndLateJoin(t *testing.T) {
	a := start(t, localConfig("a"))
	seed := a.LocalMember().Addr
	b := startJoined(t, localConfig("b", seed))
	c := startJoined(t, localConfig("c", seed))
	took := waitAlive(t, 10*time.Second, []*Cluster{a, b, c}, "a", "b", "c")
	t.Logf("3 members converged %v after the last join", took)

	for _, cl := range []*Cluster{a, b, c} {
		if m := cl.LocalMember(); m.State != StateAlive || m.Meta != testMeta(cl.NodeID()) {
			t.Errorf("%s LocalMember = %+v", cl.NodeID(), m)
		}
		ms := cl.Members()
		if len(ms) != 3 || ms[0].ID != "a" || ms[1].ID != "b" || ms[2].ID != "c" {
			t.Errorf("%s Members = %+v, want a, b, c sorted", cl.NodeID(), ms)
		}
		if want := a.LocalMember().Addr; ms[0].Addr != want {
			t.Errorf("%s sees a at %s, a is at %s", cl.NodeID(), ms[0].Addr, want)
		}
	}

	// A fourth joins later through a non-seed member; everyone sees it.
	d := startJoined(t, localConfig("d", b.LocalMember().Addr))
	took = waitAlive(t, 10*time.Second, []*Cluster{a, b, c, d}, "a", "b", "c", "d")
	t.Logf("4th member seen by all %v after its join", took)
}

func TestGracefulLeave(t *testing.T) {
	a := start(t, localConfig("a"))
	seed := a.LocalMember().Addr
	b := startJoined(t, localConfig("b", seed))
	c := startJoined(t, localConfig("c", seed))
	waitAlive(t, 10*time.Second, []*Cluster{a, b, c}, "a", "b", "c")

	sub := a.Subscribe()
	defer sub.Close()
	before := <-sub.C()

	begin := time.Now()
	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := c.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if m := c.LocalMember(); m.State != StateLeft {
		t.Errorf("leaver's LocalMember state = %s, want left", m.State)
	}
	waitState(t, 5*time.Second, []*Cluster{a, b}, "c", StateLeft)
	t.Logf("leave seen by all %v after Leave began", time.Since(begin))

	// The subscriber learns it as a leave, not a failure.
	var events []Event
	testsupport.EventuallyErr(t, 2*time.Second, "a leave event for c", func() error {
		select {
		case v := <-sub.C():
			events = append(events, Diff(before, v)...)
			before = v
		default:
		}
		for _, e := range events {
			if e.Member.ID == "c" && e.Kind == EventLeave {
				return nil
			}
		}
		return errors.New("saw " + eventsString(events))
	})
	for _, e := range events {
		if e.Kind == EventFailed {
			t.Errorf("unexpected failure event %+v", e)
		}
	}

	if err := c.Join(context.Background()); !errors.Is(err, ErrLeft) {
		t.Errorf("Join after Leave = %v, want ErrLeft", err)
	}
	if err := c.SetMeta(testMeta("c"), time.Second); !errors.Is(err, ErrLeft) {
		t.Errorf("SetMeta after Leave = %v, want ErrLeft", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Stays left after the leaver stops; no failure is reported.
	if m, _ := a.View().Member("c"); m.State != StateLeft {
		t.Errorf("after Close, a sees c as %s", m.State)
	}
}

func TestFailureDetection(t *testing.T) {
	a := start(t, localConfig("a"))
	seed := a.LocalMember().Addr
	b := startJoined(t, localConfig("b", seed))
	c := startJoined(t, localConfig("c", seed))
	d := startJoined(t, localConfig("d", seed))
	waitAlive(t, 10*time.Second, []*Cluster{a, b, c, d}, "a", "b", "c", "d")

	sub := b.Subscribe()
	defer sub.Close()
	before := <-sub.C()

	if err := d.Close(); err != nil { // abrupt: no Leave
		t.Fatal(err)
	}
	took := waitState(t, 15*time.Second, []*Cluster{a, b, c}, "d", StateDead)
	t.Logf("failure of 1 in 4 detected by all %v after the abrupt stop", took)

	after := waitSubscribed(t, 2*time.Second, sub, "b's subscription to show d dead", "d",
		func(m Member) bool { return m.State == StateDead })
	// Only d's failure is certain: on a starved host a false suspicion of
	// another member may be in flight too.
	events := Diff(before, after)
	if !slices.Contains(events, Event{Kind: EventFailed, Member: mustMember(t, after, "d")}) {
		t.Errorf("Diff = %s, want a failed event for d", eventsString(events))
	}
	testsupport.EventuallyErr(t, 10*time.Second, "the others to stay alive", func() error {
		if v := b.View(); strings.Join(v.AliveIDs(), ",") != "a,b,c" {
			return errors.New("saw " + states(v))
		}
		return nil
	})
}

func TestSetMetaUpdate(t *testing.T) {
	a := start(t, localConfig("a"))
	b := startJoined(t, localConfig("b", a.LocalMember().Addr))
	waitAlive(t, 10*time.Second, []*Cluster{a, b}, "a", "b")

	sub := a.Subscribe()
	defer sub.Close()
	before := <-sub.C()

	meta := testMeta("b")
	meta.RaftAddr = "127.0.0.1:9999"
	if err := b.SetMeta(Meta{Subject: meta.Subject, RaftAddr: meta.RaftAddr, Version: meta.Version}, 2*time.Second); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	after := waitSubscribed(t, 3*time.Second, sub, "a to see b's new metadata", "b",
		func(m Member) bool { return m.Meta == meta })
	if ev := Diff(before, after); len(ev) != 1 || ev[0].Kind != EventUpdate || ev[0].Member.Meta != meta {
		t.Errorf("Diff = %s, want one update of b", eventsString(ev))
	}

	if err := b.SetMeta(Meta{NodeID: "x"}, time.Second); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetMeta with another NodeID = %v, want ErrInvalidConfig", err)
	}
	if err := b.SetMeta(Meta{Subject: strings.Repeat("s", MetaMaxSize)}, time.Second); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("SetMeta too large = %v, want ErrMetaTooLarge", err)
	}
}

func TestEncryption(t *testing.T) {
	key1 := bytes.Repeat([]byte{1}, 32)
	key2 := bytes.Repeat([]byte{2}, 32)
	cfgA := localConfig("a")
	cfgA.SecretKey = key1
	a := start(t, cfgA)
	seed := a.LocalMember().Addr

	t.Run("same key joins", func(t *testing.T) {
		cfg := localConfig("b", seed)
		cfg.SecretKey = key1
		b := startJoined(t, cfg)
		waitAlive(t, 10*time.Second, []*Cluster{a, b}, "a", "b")
		if err := b.Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		waitState(t, 5*time.Second, []*Cluster{a}, "b", StateLeft)
	})

	for name, key := range map[string][]byte{"wrong key": key2, "no key": nil} {
		t.Run(name, func(t *testing.T) {
			cfg := localConfig("x", seed)
			cfg.SecretKey = key
			x := start(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := x.Join(ctx)
			if !errors.Is(err, ErrJoin) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Join = %v, want ErrJoin and DeadlineExceeded", err)
			}
			t.Logf("Join error: %v", err)
			if _, ok := a.View().Member("x"); ok {
				t.Errorf("a knows x: %s", states(a.View()))
			}
			if ids := x.View().AliveIDs(); len(ids) != 1 {
				t.Errorf("x sees %v", ids)
			}
		})
	}
}

func TestJoinRetriesUntilSeedAnswers(t *testing.T) {
	// Take a free port from a member and release it, so the seed address
	// has nobody behind it while the joiner starts retrying.
	probe, err := New(localConfig("probe"), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	seed := probe.LocalMember().Addr
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(seed)
	port, _ := strconv.Atoi(portStr)

	rec := &recorder{}
	cfg := localConfig("b", seed)
	b, err := New(cfg, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	joined := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		joined <- b.Join(ctx)
	}()
	testsupport.EventuallyErr(t, 5*time.Second, "two failed join attempts", func() error {
		if n := rec.count("cluster: join attempt failed"); n < 2 {
			return errors.New("saw " + strconv.Itoa(n))
		}
		return nil
	})

	cfgA := localConfig("a")
	cfgA.BindPort = port
	a, err := New(cfgA, testLogger())
	if err != nil {
		t.Skipf("port %d was taken in between: %v", port, err)
	}
	t.Cleanup(func() { _ = a.Close() })

	select {
	case err := <-joined:
		if err != nil {
			t.Fatalf("Join: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after the seed came up")
	}
	if n := rec.count("cluster: joined"); n != 1 {
		t.Errorf("%d 'joined' lines, want 1", n)
	}
	waitAlive(t, 10*time.Second, []*Cluster{a, b}, "a", "b")
}

func TestLifecycleErrors(t *testing.T) {
	a := start(t, localConfig("a"))
	if err := a.Join(context.Background()); err != nil {
		t.Errorf("Join with no seeds = %v", err)
	}
	if err := a.Leave(time.Second); err != nil { // alone: nobody to tell
		t.Errorf("Leave alone = %v", err)
	}

	b := start(t, localConfig("b", "127.0.0.1:1"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Join(ctx); !errors.Is(err, ErrJoin) || !errors.Is(err, context.Canceled) {
		t.Errorf("Join with a done context = %v", err)
	}

	// Close interrupts a Join that is waiting to retry.
	joined := make(chan error, 1)
	go func() { joined <- b.Join(context.Background()) }()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-joined:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Join during Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Join did not return after Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := b.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close = %v", err)
	}
	if err := b.SetMeta(Meta{}, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("SetMeta after Close = %v", err)
	}
	if err := b.Join(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close = %v", err)
	}
	sub := b.Subscribe()
	if v, ok := <-sub.C(); !ok || v.Version == 0 {
		t.Errorf("Subscribe after Close: first receive = %v, %v; want the final view", v, ok)
	}
	if _, ok := <-sub.C(); ok {
		t.Error("Subscribe after Close: channel not closed")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := localConfig("a")
	cfg.Meta.Subject = strings.Repeat("x", MetaMaxSize)
	_, err := New(cfg, testLogger())
	if !errors.Is(err, ErrMetaTooLarge) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with large meta = %v, want ErrMetaTooLarge and ErrInvalidConfig", err)
	}

	a := start(t, localConfig("a"))
	_, port, _ := net.SplitHostPort(a.LocalMember().Addr)
	cfg = localConfig("b")
	cfg.BindPort, _ = strconv.Atoi(port)
	if _, err := New(cfg, testLogger()); err == nil || !strings.Contains(err.Error(), "cluster: start memberlist") {
		t.Errorf("New on a taken port = %v", err)
	}
}

// TestSlowSubscriber: a subscriber that does not read loses nothing but
// intermediate views; one that reads sees strictly increasing versions.
func TestSlowSubscriber(t *testing.T) {
	a := start(t, localConfig("a"))
	slow := a.Subscribe()
	defer slow.Close()
	first := <-slow.C()

	fast := a.Subscribe()
	var (
		wg       sync.WaitGroup
		versions []uint64
	)
	wg.Go(func() {
		for v := range fast.C() {
			versions = append(versions, v.Version)
		}
	})

	seed := a.LocalMember().Addr
	b := startJoined(t, localConfig("b", seed))
	c := startJoined(t, localConfig("c", seed))
	waitAlive(t, 10*time.Second, []*Cluster{a, b, c}, "a", "b", "c")
	for i := range 3 {
		m := testMeta("a")
		m.Version = "v" + strconv.Itoa(i)
		if err := a.SetMeta(m, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	latest := a.View()
	if latest.Version < first.Version+5 {
		t.Fatalf("only %d changes", latest.Version-first.Version)
	}
	testsupport.EventuallyErr(t, 2*time.Second, "publisher to catch up", func() error {
		if p := a.table.publishedVersion(); p != latest.Version {
			return errors.New("saw " + strconv.FormatUint(p, 10))
		}
		return nil
	})

	got := <-slow.C()
	if got.Version != latest.Version || states(got) != states(latest) {
		t.Errorf("slow subscriber got %s, want %s", states(got), states(latest))
	}
	select {
	case v := <-slow.C():
		t.Errorf("slow subscriber has another view buffered: %s", states(v))
	default:
	}
	if ev := Diff(first, got); len(ev) != 3 {
		t.Errorf("Diff(first, latest) = %s, want joins of b and c and an update of a", eventsString(ev))
	}

	fast.Close()
	wg.Wait()
	for i := 1; i < len(versions); i++ {
		if versions[i] <= versions[i-1] {
			t.Fatalf("fast subscriber versions not increasing: %v", versions)
		}
	}
	if len(versions) == 0 || versions[len(versions)-1] != latest.Version {
		t.Errorf("fast subscriber versions %v do not end at %d", versions, latest.Version)
	}
	t.Logf("fast subscriber saw %d views for %d changes; slow saw 2", len(versions), latest.Version-first.Version)
}

func TestCloseStopsGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	var cs []*Cluster
	for i, id := range []string{"a", "b", "c"} {
		cfg := localConfig(id)
		if i > 0 {
			cfg.Join = []string{cs[0].LocalMember().Addr}
		}
		c, err := New(cfg, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		if err := c.Join(context.Background()); err != nil {
			t.Fatal(err)
		}
		_ = c.Subscribe() // left open: Close must close it
	}
	waitAlive(t, 10*time.Second, cs, "a", "b", "c")
	running := runtime.NumGoroutine()
	if err := cs[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	took := testsupport.EventuallyErr(t, 10*time.Second, "goroutines back to baseline", func() error {
		if n := runtime.NumGoroutine(); n > baseline+2 {
			return errors.New("saw " + strconv.Itoa(n) + " vs baseline " + strconv.Itoa(baseline))
		}
		return nil
	})
	t.Logf("goroutines: baseline %d, 3 members running %d, back to baseline %v after Close", baseline, running, took)
}

func mustMember(t *testing.T, v View, id string) Member {
	t.Helper()
	m, ok := v.Member(id)
	if !ok {
		t.Fatalf("%s not in %s", id, states(v))
	}
	return m
}

func eventsString(es []Event) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Kind.String() + ":" + e.Member.ID + " ")
	}
	return "[" + b.String() + "]"
}

// recorder is a slog.Handler that counts messages.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}
