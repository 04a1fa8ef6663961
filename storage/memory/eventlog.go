package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

var (
	_ eventlog.Log        = (*EventLog)(nil)
	_ eventlog.Outbox     = (*EventLog)(nil)
	_ eventlog.TimeReader = (*EventLog)(nil)
)

// EventLog is an in-memory eventlog.Log that also implements
// eventlog.Outbox (see outbox.go). The zero value is not usable; call
// NewEventLog.
type EventLog struct {
	mu struct {
		sync.Mutex
		closed bool
		// histories holds each aggregate's events; histories[r][i] has
		// Sequence i+1.
		histories map[model.Ref][]model.Event
		// byTime is each aggregate's event-time order: byTime[r] holds
		// the indexes into histories[r], sorted by model.TimeKey. Append
		// keeps it sorted.
		byTime map[model.Ref][]int
		// outbox holds each writer's position and marks.
		outbox map[string]*outboxWriter
	}
}

// NewEventLog returns an empty, open in-memory event log.
func NewEventLog() *EventLog {
	l := &EventLog{}
	l.mu.histories = make(map[model.Ref][]model.Event)
	l.mu.byTime = make(map[model.Ref][]int)
	l.mu.outbox = make(map[string]*outboxWriter)
	return l
}

// Append implements eventlog.Log. Entries are applied in order under one lock,
// so the batch is atomic as a whole with respect to readers.
func (l *EventLog) Append(ctx context.Context, batch []eventlog.Append) []error {
	if errs := failDone(ctx, batch, eventlog.ErrUnavailable, func(a eventlog.Append) string { return "append " + a.Ref.String() }); errs != nil {
		return errs
	}
	errs := make([]error, len(batch))
	// Validate and copy outside the lock; only the sequence check and the
	// slice append need it.
	copies := make([][]model.Event, len(batch))
	for i := range batch {
		a := &batch[i]
		if err := eventlog.CheckAppend(a); err != nil {
			errs[i] = err
			continue
		}
		copies[i] = make([]model.Event, len(a.Events))
		for j := range a.Events {
			copies[i][j] = copyEvent(&a.Events[j])
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		for i := range batch {
			errs[i] = fmt.Errorf("append %s: %w", batch[i].Ref, eventlog.ErrClosed)
		}
		return errs
	}
	for i := range batch {
		if errs[i] != nil {
			continue
		}
		a := &batch[i]
		h := l.mu.histories[a.Ref]
		if last := uint64(len(h)); last != a.Expected {
			errs[i] = eventlog.ConflictError(a.Ref, a.Expected, last)
			continue
		}
		l.mu.histories[a.Ref] = append(h, copies[i]...)
		l.indexLocked(a.Ref, len(h))
	}
	return errs
}

// indexLocked adds the events of ref from index from on to its
// event-time order. An event in time order goes to the end after one
// comparison; a late one is inserted by binary search.
func (l *EventLog) indexLocked(ref model.Ref, from int) {
	h, idx := l.mu.histories[ref], l.mu.byTime[ref]
	for i := from; i < len(h); i++ {
		k := h[i].TimeKey()
		if n := len(idx); n == 0 || h[idx[n-1]].TimeKey().Before(k) {
			idx = append(idx, i)
			continue
		}
		at, _ := slices.BinarySearchFunc(idx, k, func(p int, k model.TimeKey) int { return h[p].TimeKey().Compare(k) })
		idx = slices.Insert(idx, at, i)
	}
	l.mu.byTime[ref] = idx
}

// ReadTimePage implements eventlog.TimeReader from the event-time order
// Append keeps, under the log's lock: a page costs a binary search and a
// copy of its events.
func (l *EventLog) ReadTimePage(ctx context.Context, ref model.Ref, after model.TimeKey, limit int) ([]model.Event, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("%w: read %s in event time after %v: %w", eventlog.ErrUnavailable, ref, after, err)
	}
	if limit <= 0 {
		return nil, false, fmt.Errorf("memory: read %s in event time after %v: limit %d is not positive", ref, after, limit)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, false, fmt.Errorf("read %s in event time: %w", ref, eventlog.ErrClosed)
	}
	h, idx := l.mu.histories[ref], l.mu.byTime[ref]
	start := 0
	if !after.IsZero() {
		// The first event whose key sorts after `after`.
		start = sort.Search(len(idx), func(i int) bool { return after.Before(h[idx[i]].TimeKey()) })
	}
	end := min(start+limit, len(idx))
	var page []model.Event
	if end > start {
		page = make([]model.Event, 0, end-start)
	}
	for _, p := range idx[start:end] {
		page = append(page, copyEvent(&h[p]))
	}
	return page, end < len(idx), nil
}

// ReadPage implements eventlog.Log.
func (l *EventLog) ReadPage(ctx context.Context, ref model.Ref, from uint64, limit int) ([]model.Event, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("%w: read %s from %d: %w", eventlog.ErrUnavailable, ref, from, err)
	}
	if limit <= 0 {
		return nil, 0, fmt.Errorf("memory: read %s from %d: limit %d is not positive", ref, from, limit)
	}
	if from == 0 {
		from = 1
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, 0, fmt.Errorf("read %s: %w", ref, eventlog.ErrClosed)
	}
	h := l.mu.histories[ref]
	last := uint64(len(h))
	if from > last {
		return nil, 0, nil
	}
	end := min(from-1+uint64(limit), last)
	page := make([]model.Event, 0, end-(from-1))
	for i := from - 1; i < end; i++ {
		page = append(page, copyEvent(&h[i]))
	}
	next := end + 1
	if end == last {
		next = 0
	}
	return page, next, nil
}

// LastSequence implements eventlog.Log.
func (l *EventLog) LastSequence(ctx context.Context, ref model.Ref) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: last sequence of %s: %w", eventlog.ErrUnavailable, ref, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, fmt.Errorf("last sequence of %s: %w", ref, eventlog.ErrClosed)
	}
	return uint64(len(l.mu.histories[ref])), nil
}

// Close implements eventlog.Log. It drops the data; a second Close returns
// ErrClosed.
func (l *EventLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return eventlog.ErrClosed
	}
	l.mu.closed = true
	l.mu.histories = nil
	l.mu.byTime = nil
	l.mu.outbox = nil
	return nil
}

// copyEvent returns a deep copy of e with its times cut to milliseconds in
// UTC, the precision every durable store keeps.
func copyEvent(e *model.Event) model.Event {
	c := *e
	c.Timestamp = toMillis(e.Timestamp)
	c.ProcessingTime = toMillis(e.ProcessingTime)
	if e.Payload != nil {
		c.Payload = bytes.Clone(e.Payload)
	}
	return c
}

// failDone fails every item of a batch when ctx is done: each error
// wraps unavailable, says what the item's call was, and carries ctx's
// error. It returns nil while ctx is live.
func failDone[T any](ctx context.Context, items []T, unavailable error, what func(T) string) []error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	errs := make([]error, len(items))
	for i, it := range items {
		errs[i] = fmt.Errorf("%w: %s: %w", unavailable, what(it), err)
	}
	return errs
}

// toMillis truncates t to milliseconds and returns it in UTC without a
// monotonic clock reading.
func toMillis(t time.Time) time.Time {
	return time.UnixMilli(t.UnixMilli()).UTC()
}

var _ eventlog.HeadChecker = (*EventLog)(nil)

// CheckHead implements eventlog.HeadChecker: every head is checked under
// one lock.
func (l *EventLog) CheckHead(ctx context.Context, heads []eventlog.Head) []error {
	if errs := failDone(ctx, heads, eventlog.ErrUnavailable, func(h eventlog.Head) string { return "check the head of " + h.Ref.String() }); errs != nil {
		return errs
	}
	errs := make([]error, len(heads))
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, h := range heads {
		switch last := uint64(len(l.mu.histories[h.Ref])); {
		case l.mu.closed:
			errs[i] = fmt.Errorf("check the head of %s: %w", h.Ref, eventlog.ErrClosed)
		case last != h.Sequence:
			errs[i] = eventlog.ConflictError(h.Ref, h.Sequence, last)
		}
	}
	return errs
}
