// Package memory holds in-memory implementations of eventlog.Log (with the
// eventlog.Outbox capability) and commandlog.Log.
//
// They exist for unit tests of the layers above the stores (executor,
// idempotency, bus catch-up) and as the reference behaviour every other store
// is measured against: each passes the same conformance suites
// (eventlog/eventlogtest, commandlog/commandlogtest), and where a contract
// leaves room this package picks the strictest reading.
//
// Nothing here is durable: the data lives as long as the value does.
//
// # Behaviour worth knowing
//
//   - Timestamps (Event.Timestamp, Event.ProcessingTime, Record.At) are kept
//     at millisecond precision and returned in UTC, as every durable store
//     keeps them, so a test that passes here does not depend on precision a
//     real store would lose.
//   - Slices are copied on the way in and on the way out; callers may reuse
//     or modify them freely.
//   - Each log is guarded by one mutex, never held across anything but map
//     and slice operations. A log is safe for concurrent use.
//   - EventLog is an eventlog.TimeReader: Append keeps, per aggregate, the
//     indexes of its events sorted by model.TimeKey (an event in time order
//     is appended after one comparison, a late one inserted after a binary
//     search), so ReadTimePage is a binary search and a copy of one page.
//   - EventLog is its own eventlog.Outbox (eventlogtest.RunOutbox): a mark
//     is recorded when Mark returns, a writer's Last only moves forward,
//     SetPublished drops the marks of the buckets it covers, and a Mark
//     call without marks records nothing.
package memory
