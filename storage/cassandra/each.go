package cassandra

import (
	"context"
	"sync"
)

// each runs fn(i) for every i whose errs[i] is nil, at most limit at a time,
// and stores the result in errs[i]. A single pending entry (the executor's
// common case) runs on the calling goroutine. An entry not yet started when
// ctx ends gets cancelled(i, ctx.Err()) instead. It is how the store spreads
// a batch of independent single-partition operations (appends, head checks,
// conditional inserts) over concurrent requests.
func each(ctx context.Context, limit int, errs []error, fn func(i int) error, cancelled func(i int, err error) error) {
	pending, only := 0, 0
	for i, err := range errs {
		if err == nil {
			pending, only = pending+1, i
		}
	}
	switch pending {
	case 0:
		return
	case 1:
		errs[only] = fn(only)
		return
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range errs {
		if errs[i] != nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = cancelled(i, ctx.Err())
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
}

// eachOpen is each for a batch call of v's log: every item fails with
// ErrClosed when v is closed, and an item not started when ctx ends fails
// with ErrUnavailable; what(i) names item i in both errors.
func (v *view) eachOpen(ctx context.Context, limit int, errs []error, what func(i int) string, fn func(i int) error) {
	if err := v.CheckOpen(); err != nil {
		for i := range errs {
			errs[i] = v.Wrap(what(i), err, true)
		}
		return
	}
	each(ctx, limit, errs, fn, func(i int, err error) error { return v.Wrap(what(i), err, false) })
}
