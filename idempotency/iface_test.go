package idempotency

import "github.com/concursus-go/concursus/executor"

// The group is what the executor takes as its replicated filter.
var _ executor.Filter = (*Group)(nil)

// It tells the executor when its misses need the command log.
var _ executor.Completer = (*Group)(nil)
