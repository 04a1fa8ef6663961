package main

// node deadletters: list and replay the dead letters of a subscription
// consumer (package subscription). The work is done by
// subscription.ListDeadLetters and subscription.ReplayDeadLetters; this
// file parses the flags and formats what they return.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/subscription"
)

// maxErrorColumn bounds the error text in the dead letters table; --json
// has all of it.
const maxErrorColumn = 100

const deadLettersUsage = `Usage: node deadletters list   --consumer NAME [--json] [flags]
       node deadletters replay --consumer NAME [--seq N ...] [flags]

The dead letters of a subscription consumer (its Config.Name; a group's
members share them) are the events its handler kept failing on, kept in
the stream <PREFIX>_EVENTS_DEADLETTERS.

  list     prints them: the dead-letter sequence (what replay takes), when,
           the aggregate, the event, the attempts and the last error.
  replay   hands them back to the consumer's subscriptions (on
           <prefix>.replay.<consumer>) and deletes them: every one, or
           those given with --seq (repeat it, or separate with commas).
           A replay that fails again becomes a new dead letter.

Run "node deadletters list --help" for the flags.
`

func runDeadLetters(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, deadLettersUsage)
		return 2
	}
	switch args[0] {
	case "list", "replay":
		return runDeadLettersCmd(args[0], args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, deadLettersUsage)
		return 0
	}
	fmt.Fprintf(stderr, "node deadletters: unknown subcommand %q: want list or replay\n\n%s", args[0], deadLettersUsage)
	return 2
}

// runDeadLettersCmd runs `node deadletters list|replay`.
func runDeadLettersCmd(sub string, args []string, stdout, stderr io.Writer) int {
	name := "node deadletters " + sub
	nc := node.NATSConfig{URL: defaultClusterURL}
	prefix := api.DefaultPrefix
	timeout := durationValue(10 * time.Second)
	var consumer string
	var asJSON boolValue
	var seqs seqList
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&consumer, "consumer", "", "the subscription's consumer name (subscription.Config.Name); required")
	fs.Var(&timeout, "timeout", "how long the whole command may take")
	if sub == "list" {
		fs.Var(&asJSON, "json", "print a JSON array of subscription.DeadLetter and nothing else")
	} else {
		fs.Var(&seqs, "seq", "dead-letter sequence to replay (repeat, or separate with commas); none: every dead letter of the consumer")
	}
	settings := natsSettings(&nc, &prefix)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nFlags of %s (the NATS ones share the node's environment variables):\n", deadLettersUsage, name)
		fs.PrintDefaults()
	}
	if _, code, ok := parseSettings(fs, settings, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		return 2
	}
	if nc.URL == "" {
		nc.URL = defaultClusterURL
	}
	switch err := nc.CheckCredentials(); {
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	case consumer == "":
		fmt.Fprintf(stderr, "%s: --consumer is required: the subscription's Config.Name\n", name)
		return 2
	case prefix == "" || strings.ContainsAny(prefix, " *>\t\r\n"):
		fmt.Fprintf(stderr, "%s: --prefix %q is not a NATS subject prefix\n", name, prefix)
		return 2
	case timeout <= 0:
		fmt.Fprintf(stderr, "%s: --timeout %v must be positive\n", name, time.Duration(timeout))
		return 2
	}

	conn, err := nats.Connect(nc.URL, natsOptions(nc, "concursus-deadletters")...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: connecting to NATS at %s: %v (see --nats-url)\n", name, redactURL(nc.URL), err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout))
	defer cancel()

	if sub == "list" {
		letters, err := subscription.ListDeadLetters(ctx, conn, prefix, consumer)
		if err == nil {
			if asJSON {
				err = writeDeadLettersJSON(stdout, letters)
			} else {
				err = writeDeadLetters(stdout, consumer, letters)
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, explainDeadLetterError(err, prefix))
			return 1
		}
		return 0
	}
	n, err := subscription.ReplayDeadLetters(ctx, conn, prefix, consumer, seqs...)
	if n > 0 || err == nil {
		fmt.Fprintf(stdout, "replayed %s of %s on %s\n", plural(n, "dead letter"), consumer, subscription.ReplaySubject(prefix, consumer))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, explainDeadLetterError(err, prefix))
		return 1
	}
	return 0
}

// explainDeadLetterError adds what to check to the errors an operator can
// fix.
func explainDeadLetterError(err error, prefix string) string {
	switch {
	case errors.Is(err, subscription.ErrNoDeadLetterStream):
		return fmt.Sprintf("%v: no subscription has run under prefix %q on this server (check --prefix and --nats-url)", err, prefix)
	case errors.Is(err, subscription.ErrDeadLetterNotFound):
		return fmt.Sprintf("%v (node deadletters list shows the sequences; nothing was replayed)", err)
	}
	return err.Error()
}

// writeDeadLetters prints one line per dead letter.
func writeDeadLetters(w io.Writer, consumer string, letters []subscription.DeadLetter) error {
	bw := &errWriter{w: w}
	if len(letters) == 0 {
		fmt.Fprintf(bw, "no dead letters for consumer %s\n", consumer)
		return bw.err
	}
	fmt.Fprintf(bw, "%s for consumer %s:\n", plural(len(letters), "dead letter"), consumer)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tDEAD-LETTERED\tAGGREGATE\tEVENT\tSEQUENCE\tATTEMPTS\tSTREAM SEQ\tERROR")
	for _, d := range letters {
		aggregate, event, sequence := "-", "-", "-"
		if e := d.Event; e != nil {
			aggregate, event, sequence = e.Ref().String(), e.VersionedName().String(), strconv.FormatUint(e.Sequence, 10)
		} else if d.Subject != "" {
			event = "not an event, on " + d.Subject
		}
		streamSeq := "-"
		if d.StreamSeq > 0 {
			streamSeq = strconv.FormatUint(d.StreamSeq, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.Time.UTC().Format(time.RFC3339), aggregate, event, sequence,
			d.Attempts, streamSeq, shorten(d.Error, maxErrorColumn))
	}
	_ = tw.Flush()
	fmt.Fprintf(bw, "(stream seq: in the events stream, - when read from history; replay with: node deadletters replay --consumer %s [--seq SEQ])\n", consumer)
	return bw.err
}

func writeDeadLettersJSON(w io.Writer, letters []subscription.DeadLetter) error {
	if letters == nil {
		letters = []subscription.DeadLetter{}
	}
	out, err := json.MarshalIndent(letters, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// seqList is a repeatable --seq flag; each value may hold several
// sequences separated by commas.
type seqList []uint64

func (l *seqList) String() string {
	parts := make([]string, len(*l))
	for i, s := range *l {
		parts[i] = strconv.FormatUint(s, 10)
	}
	return strings.Join(parts, ",")
}

func (l *seqList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		seq, err := strconv.ParseUint(strings.TrimSpace(part), 10, 64)
		if err != nil || seq == 0 {
			return fmt.Errorf("%q is not a dead-letter sequence (a positive whole number)", part)
		}
		*l = append(*l, seq)
	}
	return nil
}
