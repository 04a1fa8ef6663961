package testsupport

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyWithin bounds how long NATS waits for the server to accept
// clients. It starts in milliseconds; the bound only keeps a broken
// server from hanging the run.
const readyWithin = 10 * time.Second

// An Option changes the embedded server's options before it starts. The
// server's defaults are set first (loopback host, a free port, no log, no
// signal handlers), so an Option may override any of them.
type Option func(*server.Options)

// JetStream turns JetStream on, with its store in a fresh t.TempDir.
func JetStream() Option {
	return func(o *server.Options) { o.JetStream = true }
}

// NATS starts a real embedded nats-server on a free loopback port, the way
// nats-server's own tests do, and shuts it down (waiting for it to stop)
// at cleanup. It fails t if the server cannot be configured or does not
// accept clients within seconds. Its URL is s.ClientURL().
//
// Cleanups run last in, first out: what a test registers after NATS (nodes
// on the server, connections to it) is stopped before the server.
func NATS(t testing.TB, opts ...Option) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	for _, opt := range opts {
		opt(o)
	}
	if o.JetStream && o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("configuring the NATS server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(readyWithin) {
		s.Shutdown()
		t.Fatalf("the NATS server did not accept clients within %v", readyWithin)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a NATS connection to url named after the test (opts may
// add to that or override it), and closes it at cleanup. It fails t if the
// connection cannot be made.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name(t.Name())}, opts...)...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
