package router

import (
	"cmp"
	"errors"
	"fmt"
	"math"
)

// Defaults. Every node of a cluster must run with the same three values: they
// decide which member owns which partition, and two nodes with different
// values compute different owners for the same member set.
const (
	// DefaultPartitionCount is a prime with room for the largest cluster we
	// plan for: 64 members get about 16 partitions each, so one partition is
	// a fine enough slice of a member's share for bounded loads to even it
	// out (measured: the busiest member owns 1.19× the average, the idlest
	// 0.5×; with 271 partitions the idlest got 0.24×, a single partition).
	// A 1021-entry table is still a few kilobytes, compares in one pass and
	// rebuilds in under a millisecond for 10 members (see doc.go).
	DefaultPartitionCount = 1021
	// DefaultReplicationFactor is the number of virtual nodes per member.
	DefaultReplicationFactor = 20
	// DefaultLoadFactor lets a member own up to 25% more than its fair share
	// of partitions (the "1+ε" of consistent hashing with bounded loads,
	// Mirrokni, Thorup and Zadimoghaddam; buraksezer/consistent's own
	// default). Lower evens the load but moves more partitions per
	// membership change; higher the reverse.
	DefaultLoadFactor = 1.25

	// MaxPartitionCount bounds PartitionCount: past it the partition table
	// is no longer small enough to compare and log in full, which is what
	// partitions are for.
	MaxPartitionCount = 1 << 16
	// MaxReplicationFactor bounds ReplicationFactor. A ring rebuild sorts
	// members × ReplicationFactor positions once per member, so the cost
	// grows with its square; past this bound a 64-member ring takes most of
	// a second to build, with no measurable gain in spread. It is a guard
	// against typos, not a tuning point.
	MaxReplicationFactor = 1024
)

// ErrInvalidConfig is returned (wrapped, with the offending field and value)
// by Config.Validate and New. It is a programming or deployment error:
// retrying with the same Config fails the same way.
var ErrInvalidConfig = errors.New("router: invalid config")

// Config shapes a Ring. It is a plain value: copy it freely. A zero field
// takes its default (see New); DefaultConfig returns all defaults.
//
// All three fields decide ownership, so they are part of a cluster's
// identity: every node must use the same values for the cluster's whole
// life. Changing PartitionCount re-homes nearly every aggregate; changing
// either of the others re-homes many partitions at once. Ring.Fingerprint
// lets nodes check that they agree.
type Config struct {
	// PartitionCount is how many partitions aggregates are hashed into
	// (unitless, 1..MaxPartitionCount). Ownership moves a whole partition
	// at a time, and a ring holds at most PartitionCount members. A prime
	// spreads the hash values evenly. Default DefaultPartitionCount (1021).
	PartitionCount int
	// ReplicationFactor is how many virtual nodes each member places on the
	// hash ring (2..MaxReplicationFactor). More virtual nodes spread
	// partitions more evenly and cost a slower rebuild. At least 2, because
	// with a single virtual node the bounded-load walk of
	// buraksezer/consistent can miss the one member with room left and
	// panic. Default DefaultReplicationFactor (20).
	ReplicationFactor int
	// LoadFactor bounds how many partitions one member may own, relative to
	// the average: at most ceil(floor(PartitionCount/members) × LoadFactor).
	// It must be finite and greater than 1: at exactly 1 the members'
	// combined room falls short of PartitionCount whenever the member count
	// does not divide it, and no table can be built. Default
	// DefaultLoadFactor (1.25).
	LoadFactor float64
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		PartitionCount:    DefaultPartitionCount,
		ReplicationFactor: DefaultReplicationFactor,
		LoadFactor:        DefaultLoadFactor,
	}
}

// WithDefaults returns c with each zero field replaced by its default.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	c.PartitionCount = cmp.Or(c.PartitionCount, d.PartitionCount)
	c.ReplicationFactor = cmp.Or(c.ReplicationFactor, d.ReplicationFactor)
	c.LoadFactor = cmp.Or(c.LoadFactor, d.LoadFactor)
	return c
}

// Validate checks c as given (New fills zero fields with defaults first) and
// reports every unusable value, naming the field and the value. Each error
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.PartitionCount < 1 || c.PartitionCount > MaxPartitionCount {
		errs = append(errs, fmt.Errorf("%w: PartitionCount %d must be between 1 and %d",
			ErrInvalidConfig, c.PartitionCount, MaxPartitionCount))
	}
	if c.ReplicationFactor < 2 || c.ReplicationFactor > MaxReplicationFactor {
		errs = append(errs, fmt.Errorf("%w: ReplicationFactor %d must be between 2 and %d",
			ErrInvalidConfig, c.ReplicationFactor, MaxReplicationFactor))
	}
	if !(c.LoadFactor > 1) || math.IsInf(c.LoadFactor, 0) {
		errs = append(errs, fmt.Errorf("%w: LoadFactor %v must be finite and greater than 1",
			ErrInvalidConfig, c.LoadFactor))
	}
	return errors.Join(errs...)
}

// maxLoad is the most partitions one of n members may own under c: the bound
// buraksezer/consistent enforces, ceil(floor(PartitionCount/n) × LoadFactor)
// (note the integer division: the library rounds the average down before
// scaling it), capped at PartitionCount. n must be at least 1.
func (c Config) maxLoad(n int) int {
	bound := math.Ceil(float64(c.PartitionCount/n) * c.LoadFactor)
	if bound >= float64(c.PartitionCount) {
		return c.PartitionCount
	}
	return int(bound)
}
