// Command lightbulb-projection keeps the index of lightbulbs by location
// (package projection) from the events stream of a node run with
// --stream, and answers queries on NATS until interrupted.
//
//	go run ./cmd/node --stream                                  # a node keeping its events in JetStream
//	go run ./examples/lightbulb/cmd/lightbulb-projection        # the projection (replays the stream)
//	go run ./examples/lightbulb/cmd/lightbulb-projection query hall
//	go run ./examples/lightbulb/cmd/lightbulb-projection query  # every location
//	go run ./examples/lightbulb/cmd/lightbulb-projection rebuild
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb/projection"
)

func main() { os.Exit(run()) }

func run() int {
	url := flag.String("nats-url", nats.DefaultURL, "NATS server")
	prefix := flag.String("prefix", api.DefaultPrefix, "subject prefix of the nodes")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: lightbulb-projection [--nats-url URL] [--prefix P] [query [LOCATION] | rebuild]\n\n"+
			"With no command it runs the projection: it replays the events stream into an index of\n"+
			"lightbulbs by location and answers queries until interrupted.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	nc, err := nats.Connect(*url, nats.Name("lightbulb-projection"), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintf(os.Stderr, "connecting to NATS at %s: %v\n", *url, err)
		return 1
	}
	defer nc.Close()

	switch flag.Arg(0) {
	case "query":
		return request(nc, projection.QuerySubject(*prefix), projection.Query{Location: flag.Arg(1)}, false)
	case "rebuild":
		return request(nc, projection.RebuildSubject(*prefix), struct{}{}, true)
	case "":
	default:
		flag.Usage()
		return 2
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	p, err := projection.Start(ctx, projection.Config{Conn: nc, Prefix: *prefix, Logger: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n(is a node running with --stream?)\n", err)
		return 1
	}
	defer p.Stop()
	log.Info("replaying the events stream")
	if err := p.CaughtUp(ctx); err != nil {
		return 0 // interrupted
	}
	log.Info("projection ready", "events", p.Index().Events(), "took", time.Since(start).Round(time.Millisecond).String(),
		"query", projection.QuerySubject(*prefix))
	<-ctx.Done()
	return 0
}

func request(nc *nats.Conn, subject string, body any, rebuild bool) int {
	data, _ := json.Marshal(body)
	m, err := nc.Request(subject, data, time.Minute)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (is the projection running?)\n", subject, err)
		return 1
	}
	var r projection.Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		fmt.Fprintf(os.Stderr, "bad reply: %s\n", m.Data)
		return 1
	}
	if !r.OK {
		fmt.Fprintln(os.Stderr, r.Error)
		return 1
	}
	switch {
	case r.Location != "":
		fmt.Printf("%s: %d bulbs\n", r.Location, len(r.Bulbs))
		for _, b := range r.Bulbs {
			state := "off"
			if b.On {
				state = "on"
			}
			fmt.Printf("  %-40s %5dW  %s\n", b.ID, b.Wattage, state)
		}
	case rebuild:
		fmt.Printf("rebuilt from the stream: %d events\n", r.Events)
	case len(r.Locations) == 0:
		fmt.Printf("no lightbulb is screwed in anywhere (%d events in the index)\n", r.Events)
	default:
		fmt.Printf("%-30s %6s %4s\n", "LOCATION", "BULBS", "ON")
		for _, l := range r.Locations {
			fmt.Printf("%-30s %6d %4d\n", l.Location, l.Bulbs, l.On)
		}
	}
	return 0
}
