package subscription_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/subscription"
)

// A billing service keeps a row per lightbulb, as member 1 of a group of
// three processes.
func Example() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	type created struct {
		Wattage int `json:"wattage"`
	}
	var h subscription.Handlers
	subscription.On(&h, "created_0", func(ctx context.Context, e subscription.Event, p created) error {
		// Idempotent by (aggregate, sequence): a redelivery after a crash
		// writes the same row again.
		fmt.Printf("bulb %s: %d W (sequence %d)\n", e.AggregateID, p.Wattage, e.Sequence)
		return nil
	})
	h.CatchAll(func(ctx context.Context, e subscription.Event) error {
		return nil // every other lightbulb event
	})

	sub, err := subscription.Subscribe(context.Background(), subscription.Config{
		Conn:          nc,
		Name:          "billing",
		AggregateType: "lightbulb",
		Group:         subscription.Group{Members: 3, Member: 1},
	}, &h)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Stop()
	<-sub.Done()
}
