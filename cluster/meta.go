package cluster

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// MetaMaxSize is the most bytes a member's encoded Meta may take: the
// limit memberlist puts on node metadata, which rides in every alive
// message.
const MetaMaxSize = memberlist.MetaMaxSize

// Meta is what a member tells the others about itself. It is gossiped as
// a small JSON object (keys "id", "subject", "raft", "version", "ring", "group"); unknown
// keys are ignored when decoding, so fields can be added without breaking
// older members.
type Meta struct {
	// NodeID repeats the member's id, so the metadata is self-describing.
	NodeID string `json:"id"`
	// Subject is the NATS subject (an inbox) on which the member takes
	// requests addressed to it directly, such as forwarded commands.
	Subject string `json:"subject,omitempty"`
	// RaftAddr is the address of the member's raft transport for the
	// idempotency group ("host:port"), empty if it takes no part.
	RaftAddr string `json:"raft,omitempty"`
	// Version is the member's software or protocol version, for rolling
	// upgrades.
	Version string `json:"version,omitempty"`
	// Ring describes the member's partitioning settings (for nodes,
	// "<partitions>/<replication>/<load factor>"). Members route the same
	// only when they agree on it, so a node leaves out of its ring any
	// member whose Ring differs from its own.
	Ring string `json:"ring,omitempty"`
	// Group is the id of the idempotency raft group the member belongs
	// to, empty while it belongs to none (see package idempotency).
	Group string `json:"group,omitempty"`
}

// encode returns the gossiped form of m, or ErrMetaTooLarge.
func (m Meta) encode() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil { // a struct of strings always marshals
		return nil, fmt.Errorf("cluster: encode metadata: %w", err)
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrMetaTooLarge, len(b), MetaMaxSize)
	}
	return b, nil
}

// decodeMeta reads a member's metadata. A member that gossips none gets
// Meta{NodeID: id}.
func decodeMeta(id string, b []byte) (Meta, error) {
	var m Meta
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return Meta{NodeID: id}, fmt.Errorf("cluster: metadata of %q: %w", id, err)
		}
	}
	if m.NodeID == "" {
		m.NodeID = id
	}
	return m, nil
}
