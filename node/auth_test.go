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
