package api

import "time"

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
	// RecordsRepaired counts command records written from a loaded
	// history: the command's events were durable but its writer stopped
	// before writing the record (they are written by the mender, and
	// counted in RecordsMended too once written).
	RecordsRepaired int64 `json:"recordsRepaired,omitempty"`
	// RepairChecks counts the command-log reads made to look for such
	// records after loads (usually one per load of an aggregate with
	// commands processed within the executor's RepairWithin).
	RepairChecks int64 `json:"repairChecks,omitempty"`
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

// IdempotencyStats describe a node's member of the replicated idempotency
// filter's raft group as the node sees it, as ClusterInfo.Idempotency
// carries them. The group reports them in this very type (idempotency.Stats
// is an alias of it).
type IdempotencyStats struct {
	NodeID  string `json:"nodeId"`
	Addr    string `json:"addr"`
	GroupID string `json:"groupId,omitempty"`
	// Role is "leader", "follower", "candidate" or "shutdown".
	Role string `json:"role"`
	// Leader is the leader's node id, "" when unknown.
	Leader       string `json:"leader,omitempty"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"appliedIndex"`
	// Voters and NonVoters list the raft configuration's servers.
	Voters    []string `json:"voters,omitempty"`
	NonVoters []string `json:"nonVoters,omitempty"`
	// Filter describes the local replica.
	Filter FilterStats `json:"filter"`
	// Complete tells whether the node's filter vouches for its misses now
	// (see the idempotency package: not within a window of its forming, of
	// a doubt, or of a jump or step of its time); while false, misses are
	// checked against the command log.
	Complete bool `json:"complete"`
	// TimeSteps counts the batches that moved the filter's time further
	// than this node's own clock moved since the batch before, by more
	// than a tolerance (a quarter of a bucket width, 1 to 5 s), while the
	// node was not doubting already: a leader's clock ahead of the last
	// leader's or stepped forward (by less than a jump too), or this node
	// applied the batch before late. Each made the node check misses
	// against the command log for a window.
	TimeSteps int64 `json:"timeSteps,omitempty"`
	// Batches counts the raft entries of records this node appended as
	// leader (ticks included), Records the records in them.
	Batches int64 `json:"batches"`
	Records int64 `json:"records"`
	// Forwarded counts forwarding attempts to the leader (a batch retried
	// counts again), ForwardedRecords the records in them.
	Forwarded        int64 `json:"forwarded"`
	ForwardedRecords int64 `json:"forwardedRecords"`
	// Conflicts lists other group ids advertised by alive members: more
	// than one group exists (see the idempotency package documentation).
	Conflicts []string `json:"conflicts,omitempty"`
}

// FilterStats describes a filter's contents: the local replica of the
// idempotency filter, as IdempotencyStats.Filter carries it
// (idempotency.FilterStats is an alias of it).
type FilterStats struct {
	// Entries is the number of command ids held.
	Entries int `json:"entries"`
	// Buckets is the number of time buckets held (at most buckets+1 per
	// window).
	Buckets int `json:"buckets"`
	// Bytes is the size of the encoded records held (the arena; the index
	// adds about 26 bytes per entry).
	Bytes int64 `json:"bytes"`
	// Now is the filter's time: the largest batch time applied.
	Now time.Time `json:"now"`
	// Window is the window of the latest batch.
	Window time.Duration `json:"window"`
	// GroupID is the raft group's id, "" until its entry was applied.
	GroupID string `json:"groupId,omitempty"`
	// TimeJumps counts the batches that moved the filter's time ahead by
	// more than two bucket widths at once while it held records (a
	// leader's clock ahead or stepped forward): each expired records
	// early, and made the node check misses against the command log for a
	// window. Counted by this replica since it started (a snapshot does
	// not carry it).
	TimeJumps int `json:"timeJumps,omitempty"`
}

// PublisherStats counts what a node's event publisher did, as Info.Publisher
// and ClusterInfo.Publisher carry them. The publisher counts them in this
// very type (eventbus.PublisherStats is an alias of it).
type PublisherStats struct {
	// Published events acknowledged by the bus on the live path.
	Published int64 `json:"published"`
	// Failed events whose live publication failed (left to the outbox).
	Failed int64 `json:"failed"`
	// Deferred events not sent live because the queue was full.
	Deferred int64 `json:"deferred"`
	// Republished events published again from the log for this writer's
	// dirty buckets; Recovered for other (dead) writers.
	Republished int64 `json:"republished"`
	Recovered   int64 `json:"recovered"`
	// Watermark is the last bucket recorded as published; DirtyBuckets
	// are waiting to be republished; Outstanding marks are in flight.
	Watermark    int64 `json:"watermark"`
	DirtyBuckets int   `json:"dirtyBuckets"`
	Outstanding  int   `json:"outstanding"`
	// Outbox is false for best-effort publication (no outbox).
	Outbox bool `json:"outbox"`
}
