package router

import "github.com/concursus-go/concursus/api"

// hashAggregate is the 64-bit xxhash (seed 0) of the aggregate's identity,
// encoded as
//
//	uint64 little-endian len(aggregateType) ‖ aggregateType ‖ aggregateID
//
// The length prefix makes the encoding injective: ("ab", "c") and ("a", "bc")
// hash different bytes, which a plain concatenation or any separator that may
// itself occur in a type would not guarantee. This function is part of the
// cluster's wire contract (every node must map an aggregate to the same
// partition), pinned by golden values in the tests: do not change it. It
// lives in package api (AggregateHash), where consumers find it too.
func hashAggregate(aggregateType, aggregateID string) uint64 {
	return api.AggregateHash(aggregateType, aggregateID)
}
