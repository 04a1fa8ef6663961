package cluster

// Fuzz targets for what other members gossip to this one: their metadata
// (decodeMeta, read by the delegate's observe), leave intents (NotifyMsg)
// and push/pull state (MergeRemoteState). Run one with
//
//	go test -run '^$' -fuzz '^FuzzDecodeMeta$' -fuzztime 30s ./cluster/
//
// The seed corpora under testdata/fuzz also run as plain tests.

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/hashicorp/memberlist"
)

// FuzzDecodeMeta: decoding never panics; refused metadata leaves only the
// member's id; accepted metadata always names a member (the gossiped id,
// or the member's own) and re-encodes to metadata that decodes the same.
func FuzzDecodeMeta(f *testing.F) {
	enc, err := testMeta("node-1").encode()
	if err != nil {
		f.Fatal(err)
	}
	full, err := Meta{NodeID: "n", Subject: "s", RaftAddr: "127.0.0.1:1", Version: "v", Ring: "256/1/1.25", Group: "g"}.encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add("node-1", enc)
	f.Add("node-2", full)
	f.Add("node-1", enc[:len(enc)-1])
	f.Add("x", []byte(nil))
	f.Add("x", []byte("null"))
	f.Add("x", []byte(`{"id":"","subject":"a\ud800b","future":[1,{}]}`))
	f.Add("x", []byte("{\"id\":\"x\xff\",\"id\":\"y\"}"))
	f.Add("", []byte(`{"subject":7}`))
	f.Fuzz(func(t *testing.T, id string, b []byte) {
		m, err := decodeMeta(id, b)
		if err != nil {
			if m != (Meta{NodeID: id}) {
				t.Fatalf("refused metadata decoded to %+v, want only the id %q", m, id)
			}
			return
		}
		if m.NodeID == "" && id != "" {
			t.Fatalf("accepted metadata of %q has no node id", id)
		}
		if m.NodeID != id {
			t.Fatalf("metadata of %q accepted with id %q", id, m.NodeID)
		}
		// encode may refuse it only as too large (HTML escaping grows it).
		again, err := m.encode()
		if errors.Is(err, ErrMetaTooLarge) {
			again, err = json.Marshal(m)
		}
		if err != nil {
			t.Fatalf("decoded metadata %+v does not re-encode: %v", m, err)
		}
		back, err := decodeMeta(id, again)
		if err != nil || back != m {
			t.Fatalf("re-encoded metadata decodes to %+v, %v; want %+v", back, err, m)
		}
	})
}

// FuzzMetaRoundTrip: metadata that encode accepts decodes, under the
// member's own name, to itself.
func FuzzMetaRoundTrip(f *testing.F) {
	f.Add("n", "_INBOX.concursus.n", "127.0.0.1:7000", "v1", "256/1/1.25", "g1")
	f.Add("n", "a\xffb", "", "", "", "")
	f.Add("n", "\ufffd", "<>&", "\u2028", "", "")
	f.Fuzz(func(t *testing.T, id, subject, raft, version, ring, group string) {
		m := Meta{NodeID: id, Subject: subject, RaftAddr: raft, Version: version, Ring: ring, Group: group}
		b, err := m.encode()
		if err != nil {
			if !errors.Is(err, ErrInvalidMeta) && !errors.Is(err, ErrMetaTooLarge) {
				t.Fatalf("encode error %v is neither ErrInvalidMeta nor ErrMetaTooLarge", err)
			}
			return
		}
		if len(b) > MetaMaxSize {
			t.Fatalf("encoded %d bytes, over the limit", len(b))
		}
		got, err := decodeMeta(id, b)
		if err != nil || got != m {
			t.Fatalf("%+v encodes to %s, which decodes to %+v, %v", m, b, got, err)
		}
	})
}

// TestMetaRefusesRewrittenText: gossiped metadata that encoding/json
// would rewrite (invalid UTF-8, lone surrogate escapes) or that names
// another member is refused, not read as a different value; found by
// FuzzDecodeMeta (a member name of "\xf4" came back as "\ufffd").
func TestMetaRefusesRewrittenText(t *testing.T) {
	for _, c := range []struct {
		id   string
		meta string
	}{
		{"\xf4", ""},
		{"n", "{\"subject\":\"a\xffb\"}"},
		{"n", `{"subject":"a\ud800b"}`},
		{"n", `{"raft":"\ufffd"}`},
		{"n", `{"id":"other"}`},
	} {
		m, err := decodeMeta(c.id, []byte(c.meta))
		if !errors.Is(err, ErrInvalidMeta) || m != (Meta{NodeID: c.id}) {
			t.Errorf("decodeMeta(%q, %q) = %+v, %v; want only the id and ErrInvalidMeta", c.id, c.meta, m, err)
		}
	}
	if _, err := (Meta{NodeID: "n", Subject: "a\xffb"}).encode(); !errors.Is(err, ErrInvalidMeta) {
		t.Errorf("encode of invalid UTF-8: %v, want ErrInvalidMeta", err)
	}
	if _, err := New(Config{NodeID: "n", Meta: Meta{NodeID: "n", Group: "\ufffd"}}, nil); !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, ErrInvalidMeta) {
		t.Errorf("New with invalid metadata: %v, want ErrInvalidConfig and ErrInvalidMeta", err)
	}
}

// FuzzDecodeLeaveIntent: a leave intent that decodes names a member and
// re-encodes to the same intent.
func FuzzDecodeLeaveIntent(f *testing.F) {
	b, err := encodeLeaveIntent("n-1")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-1])
	for _, s := range []string{"", "X{}", "L{", `L{"id":""}`, `L{"id":null}`, "L{\"id\":\"\xfe\"}", `S{"left":["a"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := decodeLeaveIntent(b)
		if err != nil {
			if id != "" {
				t.Fatalf("refused leave intent returned id %q", id)
			}
			return
		}
		if id == "" {
			t.Fatal("accepted a leave intent without an id")
		}
		again, err := encodeLeaveIntent(id)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := decodeLeaveIntent(again); err != nil || back != id {
			t.Fatalf("re-encoded leave intent decodes to %q, %v; want %q", back, err, id)
		}
	})
}

// FuzzDecodeState: push/pull state that decodes re-encodes to state that
// decodes to the same list of departed members.
func FuzzDecodeState(f *testing.F) {
	b, err := encodeState([]string{"a", "b"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-2])
	for _, s := range []string{"", "Q", "S", "S{}", `S{"left":[]}`, `S{"left":null}`, `S{"left":[""]}`, `S{"left":"a"}`, `L{"id":"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		left, err := decodeState(b)
		if err != nil {
			if left != nil {
				t.Fatalf("refused state returned %q", left)
			}
			return
		}
		again, err := encodeState(left)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeState(again)
		if err != nil || !slices.Equal(back, left) {
			t.Fatalf("re-encoded state decodes to %q, %v; want %q", back, err, left)
		}
	})
}

// FuzzDelegate feeds one gossiped user message, one push/pull state and
// one member's metadata to the delegate of a member table that holds an
// alive, a dead and a left member. Nothing panics; a message or state
// that does not decode changes nothing; the member whose metadata was
// gossiped is in the table, with the metadata as decodeMeta reads it (or
// only its id, when it does not decode); what the delegate shares back
// (LocalState) decodes to the members the table has as left.
func FuzzDelegate(f *testing.F) {
	intent, err := encodeLeaveIntent("alive")
	if err != nil {
		f.Fatal(err)
	}
	state, err := encodeState([]string{"dead", "unknown"})
	if err != nil {
		f.Fatal(err)
	}
	meta, err := testMeta("newcomer").encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(intent, state, "newcomer", meta)
	f.Add([]byte("L{"), []byte("S{"), "alive", []byte("{")) // all refused
	f.Add([]byte(`L{"id":"dead"}`), []byte(`S{"left":["alive","left"]}`), "dead", []byte(nil))
	f.Add([]byte{}, []byte{}, "", []byte(`{"id":"other"}`))
	f.Fuzz(func(t *testing.T, msg, state []byte, name string, meta []byte) {
		c := &Cluster{log: slog.New(slog.DiscardHandler), table: newTable(8)}
		d := &delegate{c: c}
		for _, m := range []Member{
			{ID: "alive", Addr: "127.0.0.1:1", State: StateAlive, Meta: testMeta("alive")},
			{ID: "dead", Addr: "127.0.0.1:2", State: StateDead, Meta: testMeta("dead")},
			{ID: "left", Addr: "127.0.0.1:3", State: StateAlive, Meta: testMeta("left")},
		} {
			c.table.apply(m)
		}
		c.table.leaveIntent("left")
		c.table.apply(Member{ID: "left", Addr: "127.0.0.1:3", State: StateDead, Meta: testMeta("left")})

		before := c.table.snapshot()
		_, msgErr := decodeLeaveIntent(msg)
		d.NotifyMsg(msg)
		if msgErr != nil && !sameView(before, c.table.snapshot()) {
			t.Fatalf("a refused user message (%v) changed the table", msgErr)
		}
		before = c.table.snapshot()
		_, stateErr := decodeState(state)
		d.MergeRemoteState(state, false)
		if stateErr != nil && !sameView(before, c.table.snapshot()) {
			t.Fatalf("a refused state (%v) changed the table", stateErr)
		}

		want, _ := decodeMeta(name, meta)
		d.NotifyJoin(&memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 9), Port: 7946, Meta: meta})
		got, ok := c.table.get(name)
		if !ok || got.Meta != want || got.State != StateAlive {
			t.Fatalf("member %q after join: %+v (present %v), want alive with %+v", name, got, ok, want)
		}

		shared, err := decodeState(d.LocalState(false))
		if err != nil {
			t.Fatalf("LocalState does not decode: %v", err)
		}
		if left := c.table.left(); !slices.Equal(shared, left) {
			t.Fatalf("LocalState shares %q, the table has %q as left", shared, left)
		}
	})
}

// sameView reports whether two views are the same version and hold the
// same members.
func sameView(a, b View) bool {
	return a.Version == b.Version && slices.Equal(a.Members, b.Members)
}
