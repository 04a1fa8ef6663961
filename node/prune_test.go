package node_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/memory"
)

// Command records older than the retention are pruned (the embedded store
// has no TTL of its own); younger ones stay, so their retries are still
// answered as duplicates.
func TestCommandRecordsArePrunedAfterRetention(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	commands := memory.NewCommandLog()
	ref := model.Ref{Type: "lightbulb", ID: "b1"}
	records := []commandlog.Record{
		{CommandID: "old", Ref: ref, Command: "create", Outcome: commandlog.Accepted, FirstSequence: 1, LastSequence: 1, At: now.Add(-8 * 24 * time.Hour)},
		{CommandID: "recent", Ref: ref, Command: "screwIn", Outcome: commandlog.Accepted, FirstSequence: 2, LastSequence: 2, At: now.Add(-6 * 24 * time.Hour)},
	}
	if err := commands.Put(context.Background(), records); err != nil {
		t.Fatal(err)
	}
	_, reg := lightbulbRegistry(t)
	cfg := testConfig(t)
	cfg.Clock = func() time.Time { return now }
	n, err := node.New(context.Background(), cfg, reg, node.WithEventLog(memory.NewEventLog()), node.WithCommandLog(commands))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })

	testsupport.Eventually(t, 10*time.Second, "the expired record to be pruned", func() bool {
		_, err := commands.Get(context.Background(), "old")
		return errors.Is(err, commandlog.ErrNotFound)
	})
	if _, err := commands.Get(context.Background(), "recent"); err != nil {
		t.Fatalf("a record within the retention was pruned: %v", err)
	}
}
