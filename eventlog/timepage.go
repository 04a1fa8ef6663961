package eventlog

import (
	"context"

	"github.com/concursus-go/concursus/model"
)

// ReadTimePage is TimeReader.ReadTimePage for any Log: the store's own when
// it has one, else a page cut from the whole history sorted in memory. A
// wrapper around a Log (a lazy connection, a test hook) implements
// TimeReader with it, so that it does not hide its store's capability.
func ReadTimePage(ctx context.Context, log Log, ref model.Ref, after model.TimeKey, limit int) ([]model.Event, bool, error) {
	if tr, ok := log.(TimeReader); ok {
		return tr.ReadTimePage(ctx, ref, after, limit)
	}
	var page []model.Event
	for e, err := range sortedInMemory(ctx, log, ref, after, DefaultPageSize) {
		if err != nil {
			return nil, false, err
		}
		if len(page) == limit {
			return page, true, nil
		}
		page = append(page, e)
	}
	return page, false, nil
}
