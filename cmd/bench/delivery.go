package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/node"
)

// benchDelivery measures what at-least-once publication costs: the
// command path with the events kept in a JetStream stream, first with
// best-effort publication (no outbox), then with the outbox that lets a
// node catch up from the log, each on a fresh store and a fresh stream.
// It ends with "outbox/best-effort ratio: X.XX" and checks that the stream
// holds every event the node appended in each scenario.
func benchDelivery(p params, url string, conns []*nats.Conn, opener func() (node.StoreOpener, func())) error {
	stream := map[bool]string{false: "BENCH_BE", true: "BENCH_OB"}
	return baselineAndVariant(p, url, conns, opener, [2]string{"best-effort", "outbox"},
		func(c *node.Config, outbox bool) {
			c.Stream = &eventbus.StreamConfig{Name: stream[outbox]}
			c.NoOutbox = !outbox
		},
		func(outbox bool, appended int64) error { return checkStream(conns[0], stream[outbox], appended) })
}

// checkStream compares the stream's message count with the events the
// node appended (the stream drops re-publications by event id).
func checkStream(nc *nats.Conn, name string, appended int64) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("  stream %s: %d events, node appended %d\n", name, info.State.Msgs, appended)
	if int64(info.State.Msgs) != appended {
		return fmt.Errorf("stream %s holds %d events, the node appended %d", name, info.State.Msgs, appended)
	}
	return js.DeleteStream(ctx, name)
}
