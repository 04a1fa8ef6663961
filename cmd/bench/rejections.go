package main

import (
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/node"
)

// benchRejections measures what fencing decisions that write nothing
// costs: a workload where -reject-share of the commands are rejected by
// the bulb's state (switchOn on a bulb that is on), first with the
// rejections answered unfenced (executor.Config.UnfencedDecisions, the
// behaviour before head checks, unsafe with two owners), then fenced by a
// head check, each on a fresh store. It ends with
// "fenced/unfenced ratio: X.XX". With -queries the workload is
// query-heavy instead (-query-share) and the same comparison measures the
// head check of state queries.
func benchRejections(p params, url string, conns []*nats.Conn, opener func() (node.StoreOpener, func())) error {
	return baselineAndVariant(p, url, conns, opener, [2]string{"unfenced", "fenced"},
		func(c *node.Config, fenced bool) { c.Executor.UnfencedDecisions = !fenced }, nil)
}
