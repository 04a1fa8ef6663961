package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValidates(t *testing.T) {
	c := DefaultConfig()
	c.fillDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if c.BindPort != DefaultPort || c.BindAddr != "127.0.0.1" || c.Profile != ProfileLAN || c.Meta.NodeID != c.NodeID {
		t.Errorf("defaults: %+v", c)
	}
	var zero Config
	zero.fillDefaults()
	if err := zero.Validate(); err != nil {
		t.Fatalf("zero config after defaults: %v", err)
	}
	if zero.BindPort != 0 {
		t.Errorf("zero BindPort became %d; 0 must keep meaning any free port", zero.BindPort)
	}
}

func TestDefaultNodeID(t *testing.T) {
	a, b := DefaultNodeID(), DefaultNodeID()
	if a == b {
		t.Errorf("two default ids are equal: %s", a)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+-[0-9]+-[0-9a-f]{6}$`).MatchString(a) {
		t.Errorf("default id %q is not host-pid-random", a)
	}
	if err := validateNodeID(a); err != nil {
		t.Error(err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		inErr string // "" means valid
	}{
		{"ok", func(*Config) {}, ""},
		{"ipv6 bind", func(c *Config) { c.BindAddr = "::1" }, ""},
		{"any address", func(c *Config) { c.BindAddr = "0.0.0.0" }, ""},
		{"advertise", func(c *Config) { c.BindPort = 7000; c.AdvertiseAddr = "10.0.0.1"; c.AdvertisePort = 7001 }, ""},
		{"keys", func(c *Config) { c.SecretKey = make([]byte, 24) }, ""},
		{"empty id", func(c *Config) { c.NodeID = ""; c.Meta.NodeID = "" }, "NodeID"},
		{"id with space", func(c *Config) { c.NodeID = "a b"; c.Meta.NodeID = "a b" }, "NodeID"},
		{"long id", func(c *Config) { c.NodeID = strings.Repeat("a", 129); c.Meta.NodeID = c.NodeID }, "NodeID"},
		{"bind host name", func(c *Config) { c.BindAddr = "localhost" }, "BindAddr"},
		{"bind port", func(c *Config) { c.BindPort = 70000 }, "BindPort"},
		{"advertise addr", func(c *Config) { c.AdvertiseAddr = "host" }, "AdvertiseAddr"},
		{"advertise port alone", func(c *Config) { c.BindPort = 7000; c.AdvertisePort = 7001 }, "needs an AdvertiseAddr"},
		{"advertise port, free bind port", func(c *Config) { c.AdvertiseAddr = "10.0.0.1"; c.AdvertisePort = 7001 }, "fixed BindPort"},
		{"seed without port", func(c *Config) { c.Join = []string{"127.0.0.1"} }, "Join[0]"},
		{"seed bad port", func(c *Config) { c.Join = []string{"h:1", "h:0"} }, "Join[1]"},
		{"backoff", func(c *Config) { c.JoinBackoff = -1 }, "JoinBackoff"},
		{"max backoff", func(c *Config) { c.JoinMaxBackoff = time.Millisecond }, "JoinMaxBackoff"},
		{"key length", func(c *Config) { c.SecretKey = make([]byte, 20) }, "20 bytes"},
		{"meta id", func(c *Config) { c.Meta.NodeID = "other" }, "Meta.NodeID"},
		{"meta size", func(c *Config) { c.Meta.Version = strings.Repeat("v", 500) }, "metadata too large"},
		{"profile", func(c *Config) { c.Profile = "fast" }, "Profile"},
		{"tombstones", func(c *Config) { c.Tombstones = -1 }, "Tombstones"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := localConfig("n1", "127.0.0.1:7946")
			c.fillDefaults()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.inErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.inErr != "" && (err == nil || !strings.Contains(err.Error(), tc.inErr)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.inErr)
			case err != nil && !errors.Is(err, ErrInvalidConfig):
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewValidatesAfterDefaults(t *testing.T) {
	cfg := localConfig("")
	cfg.Meta.NodeID = ""
	cfg.JoinBackoff, cfg.JoinMaxBackoff, cfg.Profile = 0, 0, ProfileLocal
	c := start(t, cfg)
	if c.NodeID() == "" || c.LocalMember().Meta.NodeID != c.NodeID() {
		t.Errorf("defaults not applied: id %q, meta %+v", c.NodeID(), c.LocalMember().Meta)
	}
	if _, err := New(Config{Profile: "nope"}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with a bad profile = %v", err)
	}
}

func TestParseSecretKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 16) // encodes with '+' or '-' and '/' or '_'
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		got, err := ParseSecretKey(" " + enc.EncodeToString(key) + "\n")
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseSecretKey(%s) = %x, %v", enc.EncodeToString(key), got, err)
		}
	}
	if _, err := ParseSecretKey(base64.StdEncoding.EncodeToString(make([]byte, 17))); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("17-byte key: %v", err)
	}
	if _, err := ParseSecretKey("not base64!"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("garbage: %v", err)
	}
}

func TestMetaEncoding(t *testing.T) {
	m := testMeta("node-1")
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"node-1","subject":"_INBOX.concursus.node-1","raft":"127.0.0.1:0/node-1","version":"test"}`; string(b) != want {
		t.Errorf("encoded %s", b)
	}
	got, err := decodeMeta("node-1", append(b[:len(b)-1:len(b)-1], `,"future":1}`...))
	if err != nil || got != m {
		t.Errorf("decode with an unknown key = %+v, %v", got, err)
	}
	if got, err := decodeMeta("x", nil); err != nil || got != (Meta{NodeID: "x"}) {
		t.Errorf("decode empty = %+v, %v", got, err)
	}
	if got, err := decodeMeta("x", []byte("{")); err == nil || got != (Meta{NodeID: "x"}) {
		t.Errorf("decode garbage = %+v, %v", got, err)
	}
	overhead := len(`{"id":"","subject":""}`)
	if _, err := (Meta{Subject: strings.Repeat("s", MetaMaxSize-overhead)}).encode(); err != nil {
		t.Errorf("meta of exactly %d bytes: %v", MetaMaxSize, err)
	}
	if _, err := (Meta{Subject: strings.Repeat("s", MetaMaxSize-overhead+1)}).encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("meta of %d bytes: %v", MetaMaxSize+1, err)
	}
}

func TestLogWriterLevels(t *testing.T) {
	rec := &levelRecorder{}
	l := log.New(logWriter{log: slog.New(rec)}, "", 0)
	l.Printf("[DEBUG] memberlist: Stream connection from=%s", "x")
	l.Printf("[INFO] memberlist: Marking b as failed")
	l.Printf("[WARN] memberlist: Refuting a suspect message")
	l.Printf("[ERR] memberlist: Failed to send ping")
	l.Printf("no tag at all")
	want := []string{
		"DEBUG Stream connection from=x",
		"DEBUG Marking b as failed",
		"WARN Refuting a suspect message",
		"WARN Failed to send ping",
		"DEBUG no tag at all",
	}
	if strings.Join(rec.lines, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", rec.lines, want)
	}
	quiet := logWriter{log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if n, err := quiet.Write([]byte("[DEBUG] skipped\n")); n != 16 || err != nil {
		t.Errorf("Write = %d, %v", n, err)
	}
}

type levelRecorder struct{ lines []string }

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.lines = append(r.lines, rec.Level.String()+" "+rec.Message)
	return nil
}
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler      { return r }

func TestWireMessages(t *testing.T) {
	b, err := encodeLeaveIntent("n-1")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := decodeLeaveIntent(b); err != nil || id != "n-1" {
		t.Errorf("leave intent round trip = %q, %v", id, err)
	}
	for _, bad := range []string{"", "X{}", "L{", `L{"id":""}`} {
		if _, err := decodeLeaveIntent([]byte(bad)); err == nil {
			t.Errorf("decodeLeaveIntent(%q) accepted", bad)
		}
	}
	if b, err := encodeState(nil); b != nil || err != nil {
		t.Errorf("empty state = %q, %v", b, err)
	}
	b, _ = encodeState([]string{"a", "b"})
	if left, err := decodeState(b); err != nil || strings.Join(left, ",") != "a,b" {
		t.Errorf("state round trip = %v, %v", left, err)
	}
	if left, err := decodeState(nil); left != nil || err != nil {
		t.Errorf("decodeState(nil) = %v, %v", left, err)
	}
	if _, err := decodeState([]byte("Q")); !errors.Is(err, errUnknownMessage) {
		t.Errorf("unknown tag: %v", err)
	}
}
