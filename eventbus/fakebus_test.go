package eventbus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventlog"
)

// fakeBus stands for a NATS connection and a JetStream stream in tests
// that run in a synctest bubble, where a real server cannot be reached.
// Like a stream it stores an event id once. It answers a publication
// according to its mode; everything it creates belongs to the bubble it
// was made in.
type fakeBus struct {
	mu        sync.Mutex
	mode      busMode
	connected bool
	stored    []string // event ids acknowledged, in order, each once
	has       map[string]bool
	sent      int // publications tried, failed ones included
}

type busMode int

const (
	busAccepts busMode = iota // stores and acknowledges
	busRefuses                // answers with an error (no stream)
	busSilent                 // never answers (a PubAck lost)
)

var errRefused = errors.New("fake bus: no stream")

func newFakeBus() *fakeBus { return &fakeBus{connected: true, has: make(map[string]bool)} }

func (b *fakeBus) set(m busMode) {
	b.mu.Lock()
	b.mode = m
	b.mu.Unlock()
}

func (b *fakeBus) setConnected(up bool) {
	b.mu.Lock()
	b.connected = up
	b.mu.Unlock()
}

// events returns the ids of the events stored, in order.
func (b *fakeBus) events() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.stored...)
}

func (b *fakeBus) attempts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

// publish applies m to the bus and returns the answer: nil, an error, or
// (silent) no answer.
func (b *fakeBus) publish(m *nats.Msg) (answer error, answered bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent++
	if !b.connected {
		return nats.ErrConnectionClosed, true
	}
	switch b.mode {
	case busRefuses:
		return errRefused, true
	case busSilent:
		return nil, false
	}
	if id := m.Header.Get(api.HeaderEventID); !b.has[id] {
		b.has[id] = true
		b.stored = append(b.stored, id)
	}
	return nil, true
}

func (b *fakeBus) PublishMsg(m *nats.Msg) error {
	err, _ := b.publish(m)
	return err
}

func (b *fakeBus) FlushTimeout(time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.connected {
		return nats.ErrConnectionClosed
	}
	return nil
}

func (b *fakeBus) IsConnected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connected
}

func (b *fakeBus) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	b.mu.Lock()
	up := b.connected
	b.mu.Unlock()
	if !up {
		b.publish(m) // counted
		return nil, nats.ErrConnectionClosed
	}
	f := &fakeFuture{msg: m, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	if err, answered := b.publish(m); err != nil {
		f.err <- err
	} else if answered {
		f.ok <- &jetstream.PubAck{}
	}
	return f, nil
}

type fakeFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *fakeFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *fakeFuture) Err() <-chan error            { return f.err }
func (f *fakeFuture) Msg() *nats.Msg               { return f.msg }

// countingOutbox counts the watermark writes of an outbox.
type countingOutbox struct {
	eventlog.Outbox
	mu     sync.Mutex
	writes []int64
}

func (o *countingOutbox) SetPublished(ctx context.Context, writer string, bucket int64) error {
	o.mu.Lock()
	o.writes = append(o.writes, bucket)
	o.mu.Unlock()
	return o.Outbox.SetPublished(ctx, writer, bucket)
}

func (o *countingOutbox) watermarks() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int64(nil), o.writes...)
}
