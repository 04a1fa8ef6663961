package idempotency

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/testsupport"
)

// TestNATSCarrier: followers forward over a real NATS server to the
// leader's propose subject.
func TestNATSCarrier(t *testing.T) {
	url := testsupport.NATS(t).ClientURL()
	n := newTestNet(t, nil)
	client := testsupport.Connect(t, url)
	n.forwardHook = NATSForwarder(client, "test")
	gs := n.start("n1", "n2", "n3")
	for _, g := range gs {
		stop, err := g.ServeNATS(testsupport.Connect(t, url), "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	var wg sync.WaitGroup
	var all []string
	var mu sync.Mutex
	for _, g := range n.live() {
		if g == leader {
			continue
		}
		for range 4 {
			recs, ids := records("nats-"+g.cfg.NodeID, 3)
			mu.Lock()
			all = append(all, ids...)
			mu.Unlock()
			wg.Go(func() {
				if err := g.Record(ctxTimeout(t, 10*time.Second), recs); err != nil {
					t.Errorf("record on %s: %v", g.cfg.NodeID, err)
				}
			})
		}
	}
	wg.Wait()
	n.waitHeld(all...)

	fwd := NATSForwarder(client, "test")
	var follower *Group
	for _, g := range n.live() {
		if g != leader {
			follower = g
			break
		}
		_ = g
	}
	if s := follower.Stats(); s.Forwarded == 0 {
		t.Fatalf("follower forwarded nothing: %+v", s)
	}
	// The carrier's error mapping: a follower answers not-leader, a corrupt
	// payload is an error, a node nobody serves is not the leader either.
	recs, _ := records("direct", 1)
	payload := forwardPayload([]*proposal{{data: appendRecord(nil, &recs[0]), n: 1}})
	ctx := ctxTimeout(t, 5*time.Second)
	if err := fwd(ctx, follower.cfg.NodeID, payload); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("forward to a follower: %v", err)
	}
	if err := fwd(ctx, leader.cfg.NodeID, []byte{fwdVersion, 1, 0}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("corrupt payload: %v", err)
	}
	if err := fwd(ctx, "nobody", payload); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("forward to nobody: %v", err)
	}
	if err := fwd(ctx, leader.cfg.NodeID, payload); err != nil {
		t.Fatalf("forward to the leader: %v", err)
	}
	n.waitHeld(recs[0].CommandID)
}

// TestTLSTransport: the raft transport runs over mutual TLS; a node
// without the right certificate cannot take part.
func TestTLSTransport(t *testing.T) {
	serverConf, clientOnly := testTLS(t)
	n := newTestNet(t, func(c *GroupConfig) { c.TLS = serverConf })
	n.start("n1", "n2", "n3")
	n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	n.recordHeld(n.group("n3"), "tls", 5)

	// A plain TCP client and one with an untrusted certificate are refused.
	l, _ := n.leader()
	conn, err := net.DialTimeout("tcp", l.Addr(), time.Second)
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = conn.Write([]byte("not tls at all"))
		buf := make([]byte, 16)
		if _, err := conn.Read(buf); err == nil {
			// The server answers a TLS alert at most; it must not serve raft.
			t.Logf("server answered plain TCP with %q", buf)
		}
		conn.Close()
	}
	if c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", l.Addr(), clientOnly); err == nil {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Write([]byte{0})
		if err == nil {
			_, err = c.Read(make([]byte, 1))
		}
		c.Close()
		if err == nil {
			t.Fatal("a client with an untrusted certificate was served")
		}
	}
}

// testTLS makes a CA and one certificate for 127.0.0.1 that serves both as
// server and client certificate, and a client config with an untrusted
// certificate.
func testTLS(t testing.TB) (*tls.Config, *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(signer *x509.Certificate, signerKey *ecdsa.PrivateKey, serial int64) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprintf("node %d", serial)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		if signer == nil {
			signer, signerKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	conf := &tls.Config{
		Certificates: []tls.Certificate{leaf(ca, caKey, 2)},
		RootCAs:      pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	}
	untrusted := &tls.Config{Certificates: []tls.Certificate{leaf(nil, nil, 3)}, RootCAs: pool, MinVersion: tls.VersionTLS13}
	return conf, untrusted
}

// BenchmarkRecord proposes records from parallel goroutines spread over
// the three nodes of a group (two of them forward to the leader), one
// record per call, and reports records per second and records per raft
// entry, for a few MaxInflight settings.
func BenchmarkRecord(b *testing.B) {
	for _, inflight := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			benchmarkRecord(b, inflight)
		})
	}
}

func benchmarkRecord(b *testing.B, inflight int) {
	n := newTestNet(b, func(c *GroupConfig) { c.MaxInflight = inflight })
	n.start("n1", "n2", "n3")
	n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	groups := n.live()
	var next atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS callers, like a busy executor
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		g := groups[int(next.Add(1))%len(groups)]
		ctx := context.Background()
		for pb.Next() {
			r := uuidRecord(int(recordSeq.Add(1)))
			if err := g.Record(ctx, []commandlog.Record{r}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	var batches, recs int64
	for _, g := range groups {
		s := g.Stats()
		batches += s.Batches
		recs += s.Records
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	if batches > 0 {
		b.ReportMetric(float64(recs)/float64(batches), "records/entry")
	}
}

// BenchmarkGroupMemory measures the heap a one-node group holds per entry,
// raft's log and latest snapshot included: 200k records recorded in
// batches of 100, then a snapshot (which compacts the log to
// TrailingLogs entries).
func BenchmarkGroupMemory(b *testing.B) {
	for b.Loop() {
		n := newTestNet(b, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g := n.start("n1")[0]
		n.waitConfig([]string{"n1"}, nil)
		const total, per = 200_000, 100
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w * per; i < total; i += 8 * per {
					recs := make([]commandlog.Record, per)
					for j := range recs {
						recs[j] = uuidRecord(i + j)
					}
					if err := g.Record(context.Background(), recs); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := g.raft.Snapshot().Error(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s := g.Filter().Stats(); s.Entries != total {
			b.Fatalf("%d entries", s.Entries)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/total, "heap-bytes/entry")
		n.closeAll()
	}
}
