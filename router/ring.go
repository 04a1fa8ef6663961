package router

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/concursus-go/concursus/api"
	"slices"
	"strconv"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

var (
	// ErrNoMembers is returned by New for an empty member set: nobody can
	// own anything. Retry once the membership has at least one member.
	ErrNoMembers = errors.New("router: no members")
	// ErrInvalidMember is returned (wrapped) by New for an empty member id.
	// An empty id would be indistinguishable from "no owner".
	ErrInvalidMember = errors.New("router: invalid member id")
	// ErrTooManyMembers is returned (wrapped, with both counts) by New when
	// there are more members than partitions. The bounded-load average
	// floor(PartitionCount/members) would be zero, leaving no member room
	// for any partition. It is a sizing error: the cluster has outgrown
	// Config.PartitionCount, which cannot change without re-homing every
	// aggregate.
	ErrTooManyMembers = errors.New("router: more members than partitions")
	// ErrBuildFailed is returned (wrapped) by New if the hashing library
	// panics or hands back a table that breaks its own guarantees (a
	// partition without owner, a member above the load bound). New's checks
	// rule out every such case known; seeing it means a library change, and
	// retrying with the same input fails the same way. Keep the old ring.
	ErrBuildFailed = errors.New("router: cannot build ring")
	// ErrPartitionCountMismatch is returned (wrapped) by Moved and
	// MovedFraction for rings with different partition counts: their
	// partitions are not the same sets of aggregates, so "moved" has no
	// meaning. Two rings of one cluster never differ here.
	ErrPartitionCountMismatch = errors.New("router: rings have different partition counts")
)

// ringMember is how a member id is handed to buraksezer/consistent.
//
// The library places a member's virtual nodes at the hashes of
// String()+"0", String()+"1", … String()+strconv.Itoa(ReplicationFactor-1).
// With the bare id as String(), members "node1" and "node11" both produce
// "node110" … "node119": their virtual nodes land on the same positions, the
// member inserted last takes them, and the table depends on the order the
// members were added (measured: 58 of 271 partitions differ between the two
// orders). So String() is the length-prefixed form "<len(id)>:<id>", from
// which the id and the trailing virtual-node number can be read back
// unambiguously: no two (member, replica) pairs share a key.
type ringMember struct {
	id  string
	key string
}

var _ consistent.Member = ringMember{}

func newRingMember(id string) ringMember {
	return ringMember{id: id, key: strconv.Itoa(len(id)) + ":" + id}
}

// String implements consistent.Member with the unambiguous key.
func (m ringMember) String() string { return m.key }

// xxhasher is consistent.Hasher over xxhash, the same hash as PartitionOf.
type xxhasher struct{}

func (xxhasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// Ring maps aggregates to partitions and partitions to owning members for
// one member set. It is immutable once built: every method is safe for
// concurrent use, and slices it returns are the caller's own copies. A
// membership change builds a new Ring; compare the two with Moved.
//
// Rings are pure values: building and querying one does no I/O, starts no
// goroutine and reads no clock.
type Ring struct {
	cfg     Config
	members []string // sorted, unique, non-empty ids
	owners  []string // owners[p] is the owner of partition p; shares members' strings
	maxLoad int
}

// New builds the ring for a member set under cfg. Zero fields of cfg take
// their defaults; the result must pass Config.Validate.
//
// members is a set: order and duplicates do not matter, and New does not
// keep or modify the slice. The ids are sorted before they reach the hash
// ring, so every node that knows the same members (and runs the same
// Config) computes the same table, however it learnt them.
//
// Errors: ErrInvalidConfig, ErrNoMembers, ErrInvalidMember,
// ErrTooManyMembers, ErrBuildFailed (each wrapped with context).
func New(cfg Config, members []string) (*Ring, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ids := slices.Clone(members)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	switch {
	case len(ids) == 0:
		return nil, ErrNoMembers
	case ids[0] == "": // sorted: an empty id would come first
		return nil, fmt.Errorf("%w: empty id among %d members", ErrInvalidMember, len(ids))
	case len(ids) > cfg.PartitionCount:
		return nil, fmt.Errorf("%w: %d members, PartitionCount %d",
			ErrTooManyMembers, len(ids), cfg.PartitionCount)
	}

	owners, err := assign(cfg, ids)
	if err != nil {
		return nil, err
	}
	r := &Ring{cfg: cfg, members: ids, owners: owners, maxLoad: cfg.maxLoad(len(ids))}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

// assign runs buraksezer/consistent over the sorted ids and copies its
// partition table out, so lookups need neither the library nor its lock.
//
// With ids sorted and unique, PartitionCount >= len(ids), LoadFactor > 1 and
// ReplicationFactor >= 2, the library cannot panic: the members' combined
// room n × ceil(floor(P/n) × L) is at least n × (floor(P/n)+1) > P, and a
// member with room has at least two virtual nodes, so the walk (which visits
// all positions but one) meets it. The recover is a last line of defence
// that turns a library surprise into ErrBuildFailed instead of a crash.
func assign(cfg Config, ids []string) (owners []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			owners, err = nil, fmt.Errorf("%w: %d members: consistent panicked: %v", ErrBuildFailed, len(ids), p)
		}
	}()
	ms := make([]consistent.Member, len(ids))
	byKey := make(map[string]string, len(ids))
	for i, id := range ids {
		m := newRingMember(id)
		ms[i] = m
		byKey[m.key] = id
	}
	c := consistent.New(ms, consistent.Config{
		Hasher:            xxhasher{},
		PartitionCount:    cfg.PartitionCount,
		ReplicationFactor: cfg.ReplicationFactor,
		Load:              cfg.LoadFactor,
	})
	owners = make([]string, cfg.PartitionCount)
	for p := range owners {
		m := c.GetPartitionOwner(p)
		if m == nil {
			return nil, fmt.Errorf("%w: partition %d has no owner", ErrBuildFailed, p)
		}
		id, ok := byKey[m.String()]
		if !ok {
			return nil, fmt.Errorf("%w: partition %d owned by unknown member %q", ErrBuildFailed, p, m.String())
		}
		owners[p] = id
	}
	return owners, nil
}

// check verifies the bounded-load guarantee on the finished table. It costs
// one pass over the table, cheap next to building it.
func (r *Ring) check() error {
	loads := make(map[string]int, len(r.members))
	for _, id := range r.owners {
		loads[id]++
	}
	for id, n := range loads {
		if n > r.maxLoad {
			return fmt.Errorf("%w: member %q owns %d partitions, bound %d",
				ErrBuildFailed, id, n, r.maxLoad)
		}
	}
	return nil
}

// Config returns the configuration the ring was built with, defaults filled.
func (r *Ring) Config() Config { return r.cfg }

// PartitionCount returns the number of partitions, Config().PartitionCount.
func (r *Ring) PartitionCount() int { return len(r.owners) }

// PartitionOf returns the partition, in [0, PartitionCount), of the aggregate
// named by type and id. It depends only on PartitionCount, never on the
// members, so it is stable across ring changes and processes (see doc.go,
// "Hashing").
func (r *Ring) PartitionOf(aggregateType, aggregateID string) int {
	return Partition(len(r.owners), aggregateType, aggregateID)
}

// Partition returns the partition, in [0, partitionCount), of the aggregate
// named by type and id: what Ring.PartitionOf returns for a ring of
// partitionCount partitions, for callers that hold no ring. partitionCount
// must be positive.
func Partition(partitionCount int, aggregateType, aggregateID string) int {
	return api.Partition(partitionCount, aggregateType, aggregateID)
}

// OwnerOf returns the id of the member owning partition, or "" if partition
// is out of range.
func (r *Ring) OwnerOf(partition int) string {
	if partition < 0 || partition >= len(r.owners) {
		return ""
	}
	return r.owners[partition]
}

// Owner returns the id of the member owning the aggregate:
// OwnerOf(PartitionOf(aggregateType, aggregateID)). It does not allocate.
func (r *Ring) Owner(aggregateType, aggregateID string) string {
	return r.owners[r.PartitionOf(aggregateType, aggregateID)]
}

// Members returns the member ids, sorted and unique.
func (r *Ring) Members() []string { return slices.Clone(r.members) }

// Has reports whether id is a member of the ring.
func (r *Ring) Has(id string) bool {
	_, ok := slices.BinarySearch(r.members, id)
	return ok
}

// Partitions returns the partition table: element p is the id of the member
// owning partition p.
func (r *Ring) Partitions() []string { return slices.Clone(r.owners) }

// OwnedBy returns, ascending, the partitions owned by member id; none if id
// is not a member. A member may own no partition at all when members are
// many next to partitions.
func (r *Ring) OwnedBy(id string) []int {
	var ps []int
	for p, owner := range r.owners {
		if owner == id {
			ps = append(ps, p)
		}
	}
	return ps
}

// MaxLoad returns the most partitions any member of this ring may own:
// ceil(floor(PartitionCount/members) × LoadFactor), capped at
// PartitionCount. No member exceeds it (New checks).
func (r *Ring) MaxLoad() int { return r.maxLoad }

// Fingerprint returns a 64-bit hash of the partition table (xxhash over the
// partition count and each owner id, length-prefixed). Two rings route every
// aggregate to the same member exactly when their tables are equal, so nodes
// can gossip or log the fingerprint to check that they agree without
// shipping the table; a mismatch between nodes that see the same members
// means their Configs or library versions differ.
func (r *Ring) Fingerprint() uint64 {
	var d xxhash.Digest
	d.Reset()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(r.owners)))
	_, _ = d.Write(n[:]) // xxhash.Digest writes never fail
	for _, id := range r.owners {
		binary.LittleEndian.PutUint64(n[:], uint64(len(id)))
		_, _ = d.Write(n[:])
		_, _ = d.WriteString(id)
	}
	return d.Sum64()
}

// Moved returns, ascending, the partitions whose owner differs between prev
// and next: the partitions that change hands when the cluster goes from prev
// to next (see doc.go, "Handover"). It returns nil when nothing moved.
//
// A nil ring stands for "no ring" (a node that has not joined yet, or has
// left): every partition of the other ring counts as moved, and Moved(nil,
// nil) is nil.
//
// Errors: ErrPartitionCountMismatch if both rings are non-nil and their
// partition counts differ.
func Moved(prev, next *Ring) ([]int, error) {
	switch {
	case prev == nil && next == nil:
		return nil, nil
	case prev == nil:
		return allPartitions(len(next.owners)), nil
	case next == nil:
		return allPartitions(len(prev.owners)), nil
	case len(prev.owners) != len(next.owners):
		return nil, fmt.Errorf("%w: %d and %d", ErrPartitionCountMismatch, len(prev.owners), len(next.owners))
	}
	var moved []int
	for p, owner := range prev.owners {
		if next.owners[p] != owner {
			moved = append(moved, p)
		}
	}
	return moved, nil
}

// MovedFraction returns the share of partitions, in [0, 1], that change
// owner between prev and next: len(Moved(prev, next)) / PartitionCount.
// Consistent hashing keeps it near 1/N when the Nth member joins or leaves.
// Nil rings and errors are as for Moved; MovedFraction(nil, nil) is 0.
func MovedFraction(prev, next *Ring) (float64, error) {
	moved, err := Moved(prev, next)
	if err != nil || len(moved) == 0 {
		return 0, err
	}
	total := 0
	if prev != nil {
		total = len(prev.owners)
	} else {
		total = len(next.owners)
	}
	return float64(len(moved)) / float64(total), nil
}

func allPartitions(n int) []int {
	ps := make([]int, n)
	for p := range ps {
		ps[p] = p
	}
	return ps
}
