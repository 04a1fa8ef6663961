package api

// ExecutorStats are a node's command counters since it started, as
// Info.Stats and ClusterInfo.Stats carry them. The executor counts them
// in this very type (executor.Stats is an alias of it).
type ExecutorStats struct {
	Accepted    int64 `json:"accepted"`
	Rejected    int64 `json:"rejected"`
	Invalid     int64 `json:"invalid"`
	Conflicts   int64 `json:"conflicts"`
	Unavailable int64 `json:"unavailable"`
	Timeouts    int64 `json:"timeouts"`
	// Saturated counts commands refused at once by back-pressure.
	Saturated int64 `json:"saturated"`
	// Duplicates counts command ids answered with their recorded outcome
	// (from the filter, the command log or the aggregate's history).
	Duplicates int64 `json:"duplicates"`
	// FilterFailures counts batches of outcomes the idempotency filter
	// did not take.
	FilterFailures int64 `json:"filterFailures,omitempty"`
	// HeadChecks counts decisions that wrote no events and so passed the
	// fence as a head check; Fenced counts decisions (with or without
	// events) and current-state queries whose fence failed because
	// another writer had moved the history: they were decided again, or
	// answered, on the reloaded state.
	HeadChecks int64 `json:"headChecks,omitempty"`
	Fenced     int64 `json:"fenced,omitempty"`
	// DoubtedMisses counts command ids checked against the command log
	// because the filter could not vouch for its memory (Completer) or did
	// not serve (Ready false).
	DoubtedMisses int64 `json:"doubtedMisses,omitempty"`
	// RecordClashes counts accepted commands whose record found another
	// decision of the same id already recorded (it should stay 0).
	RecordClashes int64 `json:"recordClashes,omitempty"`
	// RecordsMended counts command records written again after their
	// events were durable and their first write failed.
	RecordsMended int64 `json:"recordsMended,omitempty"`
	// Loads counts aggregates loaded from the event log.
	Loads int64 `json:"loads"`
	// Facts counts facts recorded, FactDuplicates facts already in their
	// history (acknowledged, stored once), FactsRefused facts refused
	// (unknown event, bad payload, stamped after the terminal event).
	Facts          int64 `json:"facts,omitempty"`
	FactDuplicates int64 `json:"factDuplicates,omitempty"`
	FactsRefused   int64 `json:"factsRefused,omitempty"`
	// LateEvents counts events (facts or commands' events) appended with a
	// timestamp before an event already recorded; Refolds counts the
	// cached states refolded from a checkpoint to absorb them.
	LateEvents int64 `json:"lateEvents,omitempty"`
	Refolds    int64 `json:"refolds,omitempty"`
	// Batches and Appended: event-log calls and the appends they carried;
	// Appended/Batches is the mean batch size.
	Batches  int64 `json:"batches"`
	Appended int64 `json:"appended"`
	// InFlight is commands accepted and not yet answered; Cached is
	// aggregates with state or work in memory.
	InFlight int64 `json:"inFlight"`
	Cached   int64 `json:"cached"`
}
