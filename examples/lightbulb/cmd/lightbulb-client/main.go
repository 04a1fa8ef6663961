// Command lightbulb-client walks one lightbulb through its life on a running
// node (go run ./cmd/node), printing each event and the resulting state the
// way the Concursus paper lists a history. It uses only the NATS API, via
// package client.
//
//	go run ./examples/lightbulb/cmd/lightbulb-client [-nats nats://127.0.0.1:4222] [-id bulb-id]
//
// With -facts it shows that state does not depend on arrival order: it
// sends the facts of a few bulbs' evenings (-bulbs, default 3) to
// <prefix>.facts.lightbulb twice, once in event-time order and once
// shuffled into random batches (seeded; the seed is printed, -seed
// replays it) for other bulb ids, lists both histories in event time with
// where each bulb's log stored every event, compares state and usage,
// and ends with "same state and usage: yes" (or exits with status 1).
//
//	go run ./examples/lightbulb/cmd/lightbulb-client -facts [-seed 42] [-bulbs 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lightbulb-client:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("nats", envOr("CONCURSUS_NATS_URL", nats.DefaultURL), "NATS URL of the cluster [$CONCURSUS_NATS_URL]")
	prefix := flag.String("prefix", envOr("CONCURSUS_PREFIX", "concursus"), "subject prefix [$CONCURSUS_PREFIX]")
	id := flag.String("id", "", "bulb id (default: a new random id); with -facts the start of the bulbs' ids")
	facts := flag.Bool("facts", false, "send the same facts in event-time order and shuffled to two sets of bulbs, and compare them")
	seed := flag.Uint64("seed", 0, "with -facts: the shuffle's seed (default: from the clock)")
	bulbs := flag.Int("bulbs", 3, "with -facts: how many bulbs (1 to 100)")
	flag.Parse()
	if *id == "" {
		*id = "bulb-" + uuid.NewString()[:8]
	}
	if *facts && (*bulbs < 1 || *bulbs > 100) {
		return fmt.Errorf("-bulbs %d: want 1 to 100", *bulbs)
	}
	if !isFlagSet("seed") {
		*seed = uint64(time.Now().UnixNano())
	}

	nc, err := nats.Connect(*url, nats.Name("lightbulb-client"))
	if err != nil {
		return fmt.Errorf("connecting to %s (is a node running? go run ./cmd/node): %w", *url, err)
	}
	defer nc.Close()
	if *facts {
		same, err := newFactsDemo(nc, *prefix, *id, *bulbs, os.Stdout).run(context.Background(), *seed)
		if err != nil {
			return err
		}
		if !same {
			return errors.New("the shuffled bulbs differ from the ordered ones")
		}
		return nil
	}
	c := client.New(nc, client.Options{Prefix: *prefix})
	lb := lightbulb.Define()
	ctx := context.Background()

	// Event timestamps come from the "device"; here an evening in the hall.
	t0 := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
	at := func(d time.Duration) client.SendOption { return client.WithTimestamp(t0.Add(d)) }

	fmt.Printf("lightbulb %s\n\n", *id)
	steps := []struct {
		what string
		send func() (*client.Result, error)
	}{
		{"create 60W", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.Create, *id, lightbulb.CreateArgs{Wattage: 60}, at(0))
		}},
		{"switch on (not screwed in yet)", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.SwitchOn, *id, lightbulb.NoArgs{}, at(time.Minute))
		}},
		{"screw in at hall", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.ScrewIn, *id, lightbulb.ScrewInArgs{Location: "hall"}, at(2*time.Minute))
		}},
		{"switch on", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.SwitchOn, *id, lightbulb.NoArgs{}, at(3*time.Minute))
		}},
		{"switch off", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.SwitchOff, *id, lightbulb.NoArgs{}, at(93*time.Minute))
		}},
		{"switch on again", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.SwitchOn, *id, lightbulb.NoArgs{}, at(120*time.Minute))
		}},
		{"unscrew while on", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.Unscrew, *id, lightbulb.NoArgs{}, at(150*time.Minute))
		}},
		{"blow", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.Blow, *id, lightbulb.NoArgs{}, at(151*time.Minute))
		}},
		{"screw in again (blown)", func() (*client.Result, error) {
			return client.Send(ctx, c, lb.ScrewIn, *id, lightbulb.ScrewInArgs{Location: "kitchen"}, at(152*time.Minute))
		}},
	}
	for _, s := range steps {
		fmt.Printf("> %s\n", s.what)
		res, err := s.send()
		var ce *client.Error
		switch {
		case errors.As(err, &ce) && errors.Is(err, client.ErrRejected):
			fmt.Printf("  rejected: %s (%s)\n", ce.Message, ce.Reason)
			continue
		case err != nil:
			return fmt.Errorf("%s: %w", s.what, err)
		}
		for _, e := range res.Events {
			printEvent(e)
		}
	}

	bulb, st, err := client.QueryAs[lightbulb.Bulb](ctx, c, lightbulb.TypeName, *id)
	if err != nil {
		return fmt.Errorf("reading state: %w", err)
	}
	fmt.Printf("\nstate at sequence %d: %+v\n", st.Sequence, bulb)
	usage, _, err := client.QueryAs[lightbulb.Usage](ctx, c, lightbulb.TypeName, *id, client.View("usage"))
	if err != nil {
		return fmt.Errorf("reading usage: %w", err)
	}
	fmt.Printf("usage: switched on %d times, on for %s in total\n", usage.Switches, time.Duration(usage.OnMillis)*time.Millisecond)
	earlier, _, err := client.QueryAs[lightbulb.Bulb](ctx, c, lightbulb.TypeName, *id, client.AsOf(t0.Add(30*time.Minute)))
	if err != nil {
		return fmt.Errorf("reading past state: %w", err)
	}
	fmt.Printf("state as of %s: %+v\n", t0.Add(30*time.Minute).Format(time.Kitchen), earlier)
	return nil
}

func printEvent(e model.Event) {
	var marks []string
	if e.Characteristics.IsInitial() {
		marks = append(marks, "initial")
	}
	if e.Characteristics.IsTerminal() {
		marks = append(marks, "terminal")
	}
	tag := ""
	if len(marks) > 0 {
		tag = " [" + strings.Join(marks, ",") + "]"
	}
	fmt.Printf("  %3d  %s  %-14s %s%s\n", e.Sequence, e.Timestamp.Format("2006-01-02 15:04:05.000"), e.VersionedName(), e.Payload, tag)
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
