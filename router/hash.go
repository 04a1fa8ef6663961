package router

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// hashAggregate is the 64-bit xxhash (seed 0) of the aggregate's identity,
// encoded as
//
//	uint64 little-endian len(aggregateType) ‖ aggregateType ‖ aggregateID
//
// The length prefix makes the encoding injective: ("ab", "c") and ("a", "bc")
// hash different bytes, which a plain concatenation or any separator that may
// itself occur in a type would not guarantee. This function is part of the
// cluster's wire contract (every node must map an aggregate to the same
// partition), pinned by golden values in the tests: do not change it.
func hashAggregate(aggregateType, aggregateID string) uint64 {
	var d xxhash.Digest
	d.Reset()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(aggregateType)))
	// xxhash.Digest writes never fail.
	_, _ = d.Write(n[:])
	_, _ = d.WriteString(aggregateType)
	_, _ = d.WriteString(aggregateID)
	return d.Sum64()
}
