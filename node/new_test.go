package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/bolt"
)

// newNode calls node.New and turns a panic into an error, so that one
// broken start-up path fails its test instead of the whole binary.
func newNode(t *testing.T, cfg node.Config) (n *node.Node, err error) {
	t.Helper()
	_, reg := lightbulbRegistry(t)
	defer func() {
		if p := recover(); p != nil {
			n, err = nil, fmt.Errorf("node.New panicked: %v", p)
		}
	}()
	n, err = node.New(context.Background(), cfg, reg)
	if n != nil {
		t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	}
	return n, err
}

// TestNewRejectsBadConfig: a configuration Validate refuses gets an error
// naming the value, before anything is opened.
func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*node.Config)
		mention string
	}{
		{"prefix with a wildcard", func(c *node.Config) { c.Prefix = "acme.*" }, `"acme.*"`},
		{"prefix ending in a dot", func(c *node.Config) { c.Prefix = "acme." }, `"acme."`},
		{"max payload too small", func(c *node.Config) { c.MaxPayload = 100 }, "100"},
		{"negative request timeout", func(c *node.Config) { c.RequestTimeout = -time.Second }, "-1s"},
		{"too many subscribers", func(c *node.Config) { c.Subscribers = 65 }, "65"},
		{"credentials for the embedded server", func(c *node.Config) { c.NATS.Token = "s3cret" }, "embedded"},
		{"embedded port out of range", func(c *node.Config) { c.NATS.EmbeddedPort = 70000 }, "70000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.change(&cfg)
			n, err := newNode(t, cfg)
			if err == nil || n != nil {
				t.Fatalf("New accepted the config (err %v)", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not name %s", err, tc.mention)
			}
			if _, statErr := os.Stat(filepath.Join(cfg.DataDir, "concursus.db")); !errors.Is(statErr, os.ErrNotExist) {
				t.Fatalf("a refused config created the data file (%v)", statErr)
			}
		})
	}
	_, err := node.New(context.Background(), testConfig(t), nil)
	if err == nil {
		t.Fatal("New accepted a nil registry")
	}
}

// TestNewFailureReturnsErrorAndReleases: when start-up fails after the store
// is open, New returns an error (it must not panic) and releases what it
// opened: the data file can be opened again at once.
func TestNewFailureReturnsErrorAndReleases(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(t *testing.T, c *node.Config)
		mention string
	}{
		{"data dir is a file", func(t *testing.T, c *node.Config) {
			f := filepath.Join(t.TempDir(), "not-a-dir")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			c.DataDir = f
		}, "data dir"},
		{"NATS server unreachable", func(t *testing.T, c *node.Config) {
			c.NATS.URL = "nats://127.0.0.1:1" // nothing listens on port 1
		}, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.change(t, &cfg)
			n, err := newNode(t, cfg)
			if err == nil || n != nil {
				t.Fatalf("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
			if fi, err := os.Stat(cfg.DataDir); err == nil && fi.IsDir() {
				db, err := bolt.Open(filepath.Join(cfg.DataDir, "concursus.db"), bolt.Options{Timeout: 100 * time.Millisecond})
				if err != nil {
					t.Fatalf("the failed New left the data file locked: %v", err)
				}
				_ = db.Close()
			}
		})
	}
}

// TestEmbeddedServerTakesAnyValidMaxPayload: Config.Validate accepts a max
// payload up to 64 MiB, so New with the embedded server must start with it.
func TestEmbeddedServerTakesAnyValidMaxPayload(t *testing.T) {
	for _, size := range []int{1 << 20, 16 << 20, 40 << 20, 64 << 20} {
		t.Run(fmt.Sprintf("%dMiB", size>>20), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxPayload = size
			n, err := newNode(t, cfg)
			if err != nil {
				t.Fatalf("New with MaxPayload %d: %v", size, err)
			}
			nc := testsupport.Connect(t, n.ClientURL())
			if got := nc.MaxPayload(); got < int64(size) {
				t.Fatalf("server max payload %d below the node's limit %d: big requests would get a NATS error, not a typed reply", got, size)
			}
			var info api.Info
			request(t, nc, api.AdminInfoSubject("concursus"), nil, &info)
		})
	}
}
