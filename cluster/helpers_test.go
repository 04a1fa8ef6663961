package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/concursus-go/concursus/internal/testsupport"
)

var logToStderr = flag.Bool("cluster.log", false, "send the clusters' logs (debug level) to stderr")

// testLogger discards unless -cluster.log is given. It never writes to t:
// memberlist's goroutines may still log for a moment after a test ends.
func testLogger() *slog.Logger {
	if *logToStderr {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// localConfig is a member on a free loopback port with the local timing
// profile and fast join retries.
func localConfig(id string, seeds ...string) Config {
	return Config{
		NodeID:         id,
		BindAddr:       "127.0.0.1",
		BindPort:       0,
		Join:           seeds,
		JoinBackoff:    20 * time.Millisecond,
		JoinMaxBackoff: 200 * time.Millisecond,
		Profile:        ProfileLocal,
		Meta:           testMeta(id),
	}
}

func testMeta(id string) Meta {
	return Meta{
		NodeID:   id,
		Subject:  "_INBOX.concursus." + id,
		RaftAddr: "127.0.0.1:0/" + id,
		Version:  "test",
	}
}

// start creates a member and closes it when the test ends.
func start(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := New(cfg, testLogger())
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close(%s): %v", cfg.NodeID, err)
		}
	})
	return c
}

// startJoined creates a member and joins it through its seeds.
func startJoined(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Join(ctx); err != nil {
		t.Fatalf("Join(%s): %v", cfg.NodeID, err)
	}
	return c
}

// states renders a view compactly: "a=alive b=left".
func states(v View) string {
	s := ""
	for _, m := range v.Members {
		s += fmt.Sprintf("%s=%s ", m.ID, m.State)
	}
	return fmt.Sprintf("v%d[%s]", v.Version, s)
}

// waitAlive waits until every member in cs sees exactly ids alive, with
// each one's test metadata.
func waitAlive(t *testing.T, timeout time.Duration, cs []*Cluster, ids ...string) time.Duration {
	t.Helper()
	want := slices.Sorted(slices.Values(ids))
	return testsupport.EventuallyErr(t, timeout, fmt.Sprintf("all see alive %v", want), func() error {
		for _, c := range cs {
			v := c.View()
			if !slices.Equal(v.AliveIDs(), want) {
				var names []string
				for _, n := range c.ml.Members() {
					names = append(names, n.Name)
				}
				return fmt.Errorf("%s sees %s, memberlist has %v", c.NodeID(), states(v), names)
			}
			for _, m := range v.Alive() {
				if m.Meta != testMeta(m.ID) {
					return fmt.Errorf("%s sees %s with meta %+v", c.NodeID(), m.ID, m.Meta)
				}
			}
		}
		return nil
	})
}

// waitState waits until every member in cs sees id in state st.
func waitState(t *testing.T, timeout time.Duration, cs []*Cluster, id string, st State) time.Duration {
	t.Helper()
	return testsupport.EventuallyErr(t, timeout, fmt.Sprintf("all see %s %s", id, st), func() error {
		for _, c := range cs {
			v := c.View()
			if m, ok := v.Member(id); !ok || m.State != st {
				return errors.New(c.NodeID() + " sees " + states(v))
			}
		}
		return nil
	})
}

// waitSubscribed reads sub until the latest view it delivered shows member
// id as ok wants, and returns that view.
func waitSubscribed(t *testing.T, timeout time.Duration, sub *Subscription, what, id string, ok func(Member) bool) View {
	t.Helper()
	var v View
	testsupport.EventuallyErr(t, timeout, what, func() error {
		select {
		case v = <-sub.C():
		default:
		}
		if m, _ := v.Member(id); !ok(m) {
			return errors.New("saw " + states(v))
		}
		return nil
	})
	return v
}

// publishedVersion returns the version of the last view published.
func (t *table) publishedVersion() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.published
}
