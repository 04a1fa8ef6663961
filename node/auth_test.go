package node_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/node"
)

// A node connects to an external server with the credentials it is given,
// and fails with a clear error without them.
func TestNodeAuthenticatesToExternalNATS(t *testing.T) {
	tests := []struct {
		name   string
		server testsupport.Option // a server that requires a token or a user and password, as a production server would
		nats   node.NATSConfig
	}{
		{name: "token", server: func(o *server.Options) { o.Authorization = "s3cret" }, nats: node.NATSConfig{Token: "s3cret"}},
		{name: "user and password", server: func(o *server.Options) { o.Username, o.Password = "concursus", "pa55" }, nats: node.NATSConfig{User: "concursus", Password: "pa55"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testsupport.NATS(t, tt.server)
			cfg := testConfig(t)
			cfg.NATS = tt.nats
			cfg.NATS.URL = s.ClientURL()
			startNode(t, cfg)
			nc := testsupport.Connect(t, strings.Replace(s.ClientURL(), "nats://", "nats://"+credentials(tt.nats)+"@", 1))
			r := mustOK(t, nc, api.Command{AggregateID: "b1", Command: "create", Args: []byte(`{"wattage":60}`)})
			if r.Sequence != 1 {
				t.Fatalf("reply %+v", r)
			}

			bad := testConfig(t)
			bad.NATS = node.NATSConfig{URL: s.ClientURL()}
			_, reg := lightbulbRegistry(t)
			if _, err := node.New(context.Background(), bad, reg); err == nil || !strings.Contains(err.Error(), "connecting to NATS") {
				t.Fatalf("node.New without credentials: err = %v, want a NATS connection error", err)
			}
		})
	}
}

func credentials(c node.NATSConfig) string {
	if c.Token != "" {
		return c.Token
	}
	return c.User + ":" + c.Password
}

// Credentials that cannot go together are refused before anything
// connects, by the node and by the admin commands (which judge their flags
// with the same CheckCredentials).
func TestContradictoryCredentialsAreRefused(t *testing.T) {
	for _, tt := range []struct {
		nats node.NATSConfig
		want string // in the error; "" for none
	}{
		{nats: node.NATSConfig{Token: "t"}},
		{nats: node.NATSConfig{User: "u", Password: "p"}},
		{nats: node.NATSConfig{CredsFile: "x.creds"}},
		{nats: node.NATSConfig{Token: "t", CredsFile: "x.creds"}, want: "at most one of"},
		{nats: node.NATSConfig{Token: "t", Password: "p"}, want: "at most one of"},
		{nats: node.NATSConfig{User: "u"}, want: `user "u" has no password`},
		{nats: node.NATSConfig{Password: "p"}, want: "password needs a user"},
	} {
		err := tt.nats.CheckCredentials()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.nats, err)
			}
			if n := len(tt.nats.AuthOptions()); n != 1 {
				t.Errorf("%+v: %d auth options, want 1", tt.nats, n)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error about %q", tt.nats, err, tt.want)
		}
		cfg := node.DefaultConfig()
		cfg.NATS = tt.nats
		cfg.NATS.URL = "nats://127.0.0.1:1"
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate with %+v: %v, want an error about %q", tt.nats, err, tt.want)
		}
	}
	if opts := (node.NATSConfig{}).AuthOptions(); len(opts) != 0 {
		t.Errorf("no credentials: %d auth options", len(opts))
	}
}
