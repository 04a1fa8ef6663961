package executor

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// UUIDs is the default IDs: event ids are version-7 UUIDs (time-ordered,
// random), processing ids are version-1 UUIDs carrying the processing time
// (Cassandra's timeuuid), with a random clock sequence and node.
type UUIDs struct{}

var _ IDs = UUIDs{}

// EventID implements IDs.
func (UUIDs) EventID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("executor: event id: %w", err)
	}
	return id.String(), nil
}

// gregorianOffset is the number of 100ns intervals between 1582-10-15 (the
// UUID epoch) and 1970-01-01.
const gregorianOffset = 0x01B21DD213814000

// ProcessingID implements IDs: a version-1 UUID for instant t.
func (UUIDs) ProcessingID(t time.Time) (string, error) {
	var u uuid.UUID
	ticks := uint64(t.UnixNano()/100) + gregorianOffset
	binary.BigEndian.PutUint32(u[0:4], uint32(ticks))
	binary.BigEndian.PutUint16(u[4:6], uint16(ticks>>32))
	binary.BigEndian.PutUint16(u[6:8], uint16(ticks>>48)&0x0fff|0x1000)
	if _, err := rand.Read(u[8:]); err != nil {
		return "", fmt.Errorf("executor: processing id: %w", err)
	}
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	u[10] |= 0x01           // random node: multicast bit set, per RFC 4122 §4.5
	return u.String(), nil
}
