package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The messages this package adds to memberlist's: a leave intent, sent as
// a user message, and the list of departed members, exchanged with every
// push/pull. Each starts with a tag byte; the rest is JSON, so fields can
// be added. Unknown tags are ignored, so that newer members can add
// messages.
const (
	tagLeaveIntent byte = 'L'
	tagState       byte = 'S'
)

var errUnknownMessage = errors.New("cluster: unknown message")

type leaveIntent struct {
	ID string `json:"id"`
}

func encodeLeaveIntent(id string) ([]byte, error) {
	b, err := json.Marshal(leaveIntent{ID: id})
	if err != nil {
		return nil, fmt.Errorf("cluster: encode leave intent: %w", err)
	}
	return append([]byte{tagLeaveIntent}, b...), nil
}

func decodeLeaveIntent(b []byte) (string, error) {
	if len(b) == 0 || b[0] != tagLeaveIntent {
		return "", errUnknownMessage
	}
	var li leaveIntent
	if err := json.Unmarshal(b[1:], &li); err != nil {
		return "", fmt.Errorf("cluster: decode leave intent: %w", err)
	}
	if li.ID == "" {
		return "", errors.New("cluster: leave intent without an id")
	}
	return li.ID, nil
}

type pushState struct {
	Left []string `json:"left,omitempty"`
}

// encodeState returns nil when there is nothing to share.
func encodeState(left []string) ([]byte, error) {
	if len(left) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(pushState{Left: left})
	if err != nil {
		return nil, fmt.Errorf("cluster: encode state: %w", err)
	}
	return append([]byte{tagState}, b...), nil
}

func decodeState(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != tagState {
		return nil, errUnknownMessage
	}
	var ps pushState
	if err := json.Unmarshal(b[1:], &ps); err != nil {
		return nil, fmt.Errorf("cluster: decode state: %w", err)
	}
	return ps.Left, nil
}
