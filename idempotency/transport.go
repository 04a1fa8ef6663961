package idempotency

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is the raft transport's connection source: a TCP listener
// (wrapped in TLS when configured) that reports the advertised address,
// and a dialer to match.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	tls       *tls.Config
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func listen(bind, advertise string, tlsConf *tls.Config) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("idempotency: listen on %s: %w", bind, err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	adv := bound
	if advertise != "" {
		host, port, _ := net.SplitHostPort(advertise) // checked by Validate
		p, _ := strconv.Atoi(port)
		if p == 0 {
			p = bound.Port
		}
		ip := net.ParseIP(host)
		if ip == nil {
			ips, err := net.LookupIP(host)
			if err != nil || len(ips) == 0 {
				_ = ln.Close()
				return nil, fmt.Errorf("%w: AdvertiseAddr %q does not resolve: %v", ErrInvalidConfig, advertise, err)
			}
			ip = ips[0]
		}
		adv = &net.TCPAddr{IP: ip, Port: p}
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("%w: the raft address %s cannot be advertised; set AdvertiseAddr", ErrInvalidConfig, adv)
	}
	s := &streamLayer{ln: ln, advertise: adv}
	if tlsConf != nil {
		s.tls = tlsConf.Clone()
		s.ln = tls.NewListener(ln, s.tls)
	}
	return s, nil
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls == nil {
		return d.Dial("tcp", string(address))
	}
	conf := s.tls
	if conf.ServerName == "" {
		conf = conf.Clone()
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			return nil, err
		}
		conf.ServerName = host
	}
	return tls.DialWithDialer(d, "tcp", string(address), conf)
}

// Accept implements net.Listener.
func (s *streamLayer) Accept() (net.Conn, error) { return s.ln.Accept() }

// Close implements net.Listener.
func (s *streamLayer) Close() error { return s.ln.Close() }

// Addr returns the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }
