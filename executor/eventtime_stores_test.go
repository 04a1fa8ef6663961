package executor_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/cassandra"
	"github.com/concursus-go/concursus/storage/memory"
)

// storeUnderTest opens one kind of store for a test.
type storeUnderTest struct {
	name string
	open func(t *testing.T) (eventlog.Log, commandlog.Log)
}

func everyStore() []storeUnderTest {
	return []storeUnderTest{
		{"memory", func(t *testing.T) (eventlog.Log, commandlog.Log) {
			return memory.NewEventLog(), memory.NewCommandLog()
		}},
		{"bolt", func(t *testing.T) (eventlog.Log, commandlog.Log) {
			db := openBolt(t)
			return db.EventLog(), db.CommandLog()
		}},
		{"cassandra", openCassandra},
	}
}

// openCassandra opens a Cassandra store in a fresh keyspace, dropped at
// the end; the test is skipped without CONCURSUS_CASSANDRA (and fails in
// CI, which must run it).
func openCassandra(t *testing.T) (eventlog.Log, commandlog.Log) {
	t.Helper()
	addr := testsupport.CassandraAddr(t, "the Cassandra suites")
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg := cassandra.DefaultConfig()
	cfg.Hosts, cfg.Keyspace, cfg.CreateSchema = []string{addr}, "test_exec_"+hex.EncodeToString(b[:]), true
	s, err := cassandra.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		c := gocql.NewCluster(addr)
		c.Timeout = 30 * time.Second
		if sess, err := c.CreateSession(); err == nil {
			_ = sess.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec()
			sess.Close()
		}
	})
	return s.EventLog(), s.CommandLog()
}

// randomBulbFacts is one bulb's life as a sensor network reports it:
// created, screwed in, switched on and off at random minutes from two
// streams (some in the same minute, in different streams), sometimes blown
// last.
func randomBulbFacts(rng *mrand.Rand) []executor.Fact {
	fs := []executor.Fact{fact("created", rng.IntN(5), `{"wattage":60}`), fact("screwedIn", 5+rng.IntN(5), `{"location":"hall"}`)}
	seen := map[string]bool{}
	for range 6 + rng.IntN(10) {
		f := fact([]string{"switchedOn", "switchedOff"}[rng.IntN(2)], 10+rng.IntN(60), "")
		if rng.IntN(3) == 0 {
			f.StreamID = "sensor-2"
		}
		// One fact per stream and instant, as a source reports: two facts
		// of one stream in one millisecond are ordered by arrival (the
		// sequence breaks the tie), which no order-independence can undo.
		if k := fmt.Sprint(f.Timestamp, f.StreamID); !seen[k] {
			seen[k] = true
			fs = append(fs, f)
		}
	}
	if rng.IntN(3) == 0 {
		fs = append(fs, fact("blown", 100, ""))
	}
	return fs
}

// randomCounterFacts: the counter's state counts the increments whose Prev
// is not the count they are applied to (Mismatch): only a fold in event
// time gives 0 whatever the arrival order.
func randomCounterFacts(rng *mrand.Rand) []executor.Fact {
	fs := []executor.Fact{{Name: model.VersionedName{Name: "created"}, Timestamp: epoch, Payload: []byte(`{}`)}}
	for i := range 5 + rng.IntN(20) {
		fs = append(fs, executor.Fact{Name: model.VersionedName{Name: "incremented"}, Timestamp: epoch.Add(time.Duration(i+1) * time.Second),
			Payload: fmt.Appendf(nil, `{"prev":%d}`, i)})
	}
	return fs
}

// TestArrivalOrderDoesNotMatterOnEveryStore is invariant 7 on every store
// and on two types: the same facts sent in event-time order and shuffled
// (random batches, duplicates among them) give the same states, views and
// asOf answers, from the cache and after a fresh load. The seed is logged.
func TestArrivalOrderDoesNotMatterOnEveryStore(t *testing.T) {
	// Page size 4: loads read in event time a page at a time (the store's
	// TimeReader); the default: a history within one page is read in log
	// order and sorted.
	for _, st := range everyStore() {
		for _, page := range []int{4, 0} {
			t.Run(fmt.Sprintf("%s/page=%d", st.name, page), func(t *testing.T) {
				seed := uint64(time.Now().UnixNano())
				t.Logf("seed %d", seed)
				rng := mrand.New(mrand.NewPCG(seed, 2))
				events, commands := st.open(t)
				h := newHarness(t, executor.Config{LoadPageSize: page}, withStores(events, commands, nil))
				type subject struct {
					typ   string
					views []string
					facts []executor.Fact
				}
				var subjects []subject
				for range 6 {
					subjects = append(subjects, subject{lightbulb.TypeName, []string{model.StateView, "usage"}, randomBulbFacts(rng)})
					subjects = append(subjects, subject{counterType, []string{model.StateView}, randomCounterFacts(rng)})
				}
				for i, s := range subjects {
					inOrder := model.Ref{Type: s.typ, ID: fmt.Sprintf("in-order-%d", i)}
					shuffledRef := model.Ref{Type: s.typ, ID: fmt.Sprintf("shuffled-%d", i)}
					sorted := slices.Clone(s.facts)
					slices.SortStableFunc(sorted, func(a, b executor.Fact) int {
						return model.TimeKey{Timestamp: a.Timestamp, StreamID: streamOf(a)}.Compare(model.TimeKey{Timestamp: b.Timestamp, StreamID: streamOf(b)})
					})
					for _, f := range sorted {
						mustIngest(t, h, inOrder, f)
					}
					shuffled := slices.Clone(s.facts)
					for range 1 + rng.IntN(3) { // duplicates, resent in the mix
						shuffled = append(shuffled, s.facts[rng.IntN(len(s.facts))])
					}
					rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
					for len(shuffled) > 0 {
						n := 1 + rng.IntN(len(shuffled))
						mustIngest(t, h, shuffledRef, shuffled[:n]...)
						shuffled = shuffled[n:]
					}
					instants := []time.Time{{}, epoch.Add(-time.Hour), epoch.Add(7 * time.Minute)}
					for range 4 {
						instants = append(instants, epoch.Add(time.Duration(rng.IntN(120*60))*time.Second))
					}
					for _, fresh := range []bool{false, true} {
						if fresh {
							h.idle(t)
							h.x.Invalidate(func(model.Ref) bool { return true })
						}
						for _, view := range s.views {
							for _, asOf := range instants {
								a, b := ask(t, h, inOrder, view, asOf), ask(t, h, shuffledRef, view, asOf)
								if a != b {
									t.Fatalf("seed %d, %s %s as of %v (fresh load %v):\n in order %s\n shuffled %s", seed, s.typ, view, asOf, fresh, a, b)
								}
							}
						}
					}
					if s.typ == counterType {
						c, _ := h.state(t, shuffledRef)
						if c.Mismatch != 0 || c.N != len(s.facts)-1 {
							t.Fatalf("seed %d: counter %s folded out of event time: %+v", seed, shuffledRef, c)
						}
					}
				}
			})
		}
	}
}

func streamOf(f executor.Fact) string {
	if f.StreamID == "" {
		return model.DefaultStream
	}
	return f.StreamID
}

func mustIngest(t *testing.T, h *harness, ref model.Ref, fs ...executor.Fact) {
	t.Helper()
	res, err := h.x.Ingest(ctxT(t), ref, fs)
	if err != nil {
		t.Fatalf("ingest %s: %v", ref, err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("ingest %s fact %d %+v: %v", ref, i, fs[i], r.Err)
		}
	}
}

func ask(t *testing.T, h *harness, ref model.Ref, view string, asOf time.Time) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q, err := h.x.Ask(ctx, executor.Query{Ref: ref, View: view, AsOf: asOf})
	if err != nil {
		t.Fatalf("query %s %s: %v", ref, view, err)
	}
	return fmt.Sprintf("exists=%v events=%d applied=%d waiting=%d last=%v/%s %s",
		q.Exists, q.Prefix.Events, q.Prefix.Applied, q.Prefix.Waiting, q.Prefix.Last.Timestamp, q.Prefix.Last.StreamID, q.Value)
}
