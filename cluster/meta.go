package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

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

// ErrInvalidMeta: a Meta field is not valid UTF-8 or holds U+FFFD, the
// replacement character (see decodeMeta). Returned by New (wrapped with
// ErrInvalidConfig) and SetMeta; fix the metadata.
var ErrInvalidMeta = errors.New("cluster: invalid metadata")

// fields returns m's fields by their JSON key.
func (m *Meta) fields() [6]struct{ key, val string } {
	return [6]struct{ key, val string }{
		{"id", m.NodeID}, {"subject", m.Subject}, {"raft", m.RaftAddr},
		{"version", m.Version}, {"ring", m.Ring}, {"group", m.Group},
	}
}

// check refuses fields that would not decode to themselves: invalid UTF-8
// is rewritten to U+FFFD by encoding/json, so a U+FFFD read back cannot be
// told from a rewritten byte, and both are refused.
func (m *Meta) check() error {
	for _, f := range m.fields() {
		if !utf8.ValidString(f.val) || strings.ContainsRune(f.val, utf8.RuneError) {
			return fmt.Errorf("%w: %q is %q: not valid UTF-8, or holds U+FFFD", ErrInvalidMeta, f.key, f.val)
		}
	}
	return nil
}

// encode returns the gossiped form of m, or ErrInvalidMeta or
// ErrMetaTooLarge.
func (m Meta) encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil { // a struct of strings always marshals
		return nil, fmt.Errorf("cluster: encode metadata: %w", err)
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrMetaTooLarge, len(b), MetaMaxSize)
	}
	return b, nil
}

// decodeMeta reads the metadata gossiped by the member named id. A member
// that gossips none gets Meta{NodeID: id}. It refuses, returning
// Meta{NodeID: id} and an error: what is not a JSON object of the fields
// above; metadata whose id names another member; and any field (the name
// included) that is not valid UTF-8 or holds U+FFFD. encoding/json would
// accept invalid UTF-8, and lone surrogate escapes, by rewriting them to
// U+FFFD, so that two different subjects or ids could read the same.
func decodeMeta(id string, b []byte) (Meta, error) {
	refuse := func(err error) (Meta, error) {
		return Meta{NodeID: id}, fmt.Errorf("cluster: metadata of %q: %w", id, err)
	}
	var m Meta
	if !utf8.Valid(b) {
		return refuse(fmt.Errorf("%w: not valid UTF-8", ErrInvalidMeta))
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			return refuse(err)
		}
	}
	if m.NodeID == "" {
		m.NodeID = id
	}
	if m.NodeID != id {
		return refuse(fmt.Errorf("%w: gossiped id %q is not the member's", ErrInvalidMeta, m.NodeID))
	}
	if err := m.check(); err != nil {
		return refuse(err)
	}
	return m, nil
}
