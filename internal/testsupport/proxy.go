package testsupport

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy on a loopback port in front of a server, for tests
// that need a connection to lose what it sends without knowing it: with
// Blackhole on, what the clients send is read and dropped (their writes
// succeed) while what the server sends still reaches them; Cut then
// closes every connection so that the clients reconnect, through the
// proxy, on connections that pass everything. Closed at cleanup.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []*proxied // open now
	wg    sync.WaitGroup
}

// proxied is one client's connection and the proxy's to the server.
type proxied struct {
	client, server net.Conn
	drop           atomic.Bool // what the client sends is dropped
}

// NewProxy listens on a free loopback port and forwards every connection
// to target (host:port).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Blackhole turns the dropping of what clients send on or off, for the
// connections open now (those made later pass everything).
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.drop.Store(on)
	}
}

// Cut closes every connection open through the proxy, both sides.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &proxied{client: client, server: server}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Go(func() {
			_, _ = io.Copy(client, server)
			_ = client.Close()
		})
		p.wg.Go(func() {
			c.forward()
			_ = server.Close()
		})
	}
}

// forward copies what the client sends to the server, dropping it while
// drop is on.
func (c *proxied) forward() {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 && !c.drop.Load() {
			if _, werr := c.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
