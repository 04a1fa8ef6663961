package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// Counter is the state of the example's aggregate type.
type Counter struct {
	Total int `json:"total"`
}

// Added is the payload of the "added" event; AddArgs the arguments of "add".
type (
	Added struct {
		N int `json:"n"`
	}
	AddArgs struct {
		N int `json:"n"`
	}
)

// This example embeds a node in a service that hosts its own aggregate
// type, a counter, and sends it a command with package client.
func Example() {
	// The aggregate type: an initial event, an event that adds to the
	// total, and a command that may create the counter.
	counter := model.NewType[Counter]("counter", model.JSON{})
	started := model.DefineEvent[struct{}](counter, "started", 0, model.Initial)
	added := model.DefineEvent[Added](counter, "added", 0, 0)
	model.On(counter.State(), added, func(c *Counter, e model.Recorded[Added]) { c.Total += e.Payload.N })
	add := model.DefineCommand(counter, "add", func(s model.Snapshot[Counter], a AddArgs) ([]model.Emit, error) {
		if a.N <= 0 {
			return nil, model.Reject("not_positive", "cannot add %d", a.N)
		}
		var emit []model.Emit
		if !s.Exists {
			emit = append(emit, started.New(struct{}{}))
		}
		return append(emit, added.New(Added(a))), nil
	}, model.Creates)
	reg, err := model.NewRegistry(counter)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The node: an embedded NATS server on a free port, the event store in
	// a directory of its own.
	dir, err := os.MkdirTemp("", "counter-node")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	n, err := node.New(context.Background(), node.Config{
		DataDir: dir,
		NATS:    node.NATSConfig{EmbeddedPort: -1},
		Logger:  slog.New(slog.DiscardHandler),
	}, reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Shutdown(context.Background())

	// A client, from this process or any other that reaches the server.
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx := context.Background()

	res, err := client.Send(ctx, c, add, "visits", AddArgs{N: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range res.Events {
		fmt.Println(e.Sequence, e.VersionedName(), string(e.Payload))
	}
	_, err = client.Send(ctx, c, add, "visits", AddArgs{N: -1})
	fmt.Println(err)

	total, st, err := client.QueryAs[Counter](ctx, c, "counter", "visits")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("total", total.Total, "at sequence", st.Sequence)
	// Output:
	// 1 started_0 {}
	// 2 added_0 {"n":2}
	// concursus: rejected (not_positive): cannot add -1
	// total 2 at sequence 2
}
