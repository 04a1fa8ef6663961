package eventbus

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// conn is the part of a NATS connection a sender uses; *nats.Conn in
// production. Safe for concurrent use.
type conn interface {
	PublishMsg(m *nats.Msg) error
	FlushTimeout(d time.Duration) error
	IsConnected() bool
}

// streamPublisher publishes to a JetStream stream without waiting;
// jetstream.JetStream in production. Safe for concurrent use.
type streamPublisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// sender puts events on the bus and waits for the bus to acknowledge them.
// Live publication and republication from the log both go through it: an
// event becomes a message (api.EventMessage) and is published here only.
// It holds no state of its own and is safe for concurrent use.
type sender struct {
	prefix string
	conn   conn
	// js is the stream publisher; nil on core NATS, where a flush
	// acknowledges what was sent before it.
	js      streamPublisher
	timeout time.Duration // for an acknowledgement (and a stalled async publish)
}

// flight is events sent together and acknowledged together. Its zero
// value is empty and ready; it belongs to one goroutine at a time.
type flight struct {
	futures []jetstream.PubAckFuture // with JetStream, one per event
	sent    int
	err     error // the first failure to send; nothing is sent after it
}

// send publishes e as part of f (with JetStream without waiting for the
// PubAck) and reports whether it was sent; after a failure (in f.err) it
// sends nothing more.
func (s *sender) send(f *flight, e *model.Event) bool {
	if f.err != nil {
		return false
	}
	m, err := api.EventMessage(s.prefix, e)
	if err == nil {
		if s.js != nil {
			var fu jetstream.PubAckFuture
			if fu, err = s.js.PublishMsgAsync(m, jetstream.WithStallWait(s.timeout)); err == nil {
				f.futures = append(f.futures, fu)
			}
		} else {
			err = s.conn.PublishMsg(m)
		}
	}
	if err != nil {
		f.err = err
		return false
	}
	f.sent++
	return true
}

// errNoAck is returned when the stream did not acknowledge in time.
var errNoAck = errors.New("no acknowledgement from the stream in time")

// await waits until the bus acknowledged every event of f: with JetStream
// each PubAck, in order and all within the timeout; on core NATS a flush
// (see flush). It returns f's send failure first, if any.
func (s *sender) await(f *flight) error {
	if f.err != nil {
		return f.err
	}
	if s.js == nil {
		return s.flush()
	}
	if len(f.futures) == 0 {
		return nil
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	for _, fu := range f.futures {
		select {
		case <-fu.Ok():
		case err := <-fu.Err():
			return err
		case <-timer.C:
			return errNoAck
		}
	}
	return nil
}

// flush waits for the server to answer a ping: on core NATS that
// acknowledges every message published before it on the connection, by
// any flight.
func (s *sender) flush() error { return s.conn.FlushTimeout(s.timeout) }

// connected tells whether the connection is up (republishing into a
// disconnected client only fills its buffer).
func (s *sender) connected() bool { return s.conn.IsConnected() }
