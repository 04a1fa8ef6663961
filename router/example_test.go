package router_test

import (
	"fmt"

	"github.com/concursus-go/concursus/router"
)

func Example() {
	// Every node builds the ring from the members it knows, in any order.
	ring, err := router.New(router.DefaultConfig(), []string{"node-c", "node-a", "node-b"})
	if err != nil {
		fmt.Println(err)
		return
	}
	p := ring.PartitionOf("lightbulb", "254ddc61-9c2a-4b8e-8f0e-2f6f3c1d9a10")
	fmt.Println("partition", p, "owned by", ring.OwnerOf(p))
	fmt.Println("members", ring.Members(), "max load", ring.MaxLoad())
	// Output:
	// partition 667 owned by node-b
	// members [node-a node-b node-c] max load 425
}

// ExampleMoved shows a node's handover when a fourth member joins: it works
// out which partitions it loses and which it gains.
func ExampleMoved() {
	cfg := router.DefaultConfig()
	prev, err := router.New(cfg, []string{"node-a", "node-b", "node-c"})
	if err != nil {
		fmt.Println(err)
		return
	}
	next, err := router.New(cfg, []string{"node-a", "node-b", "node-c", "node-d"})
	if err != nil {
		fmt.Println(err)
		return
	}
	moved, err := router.Moved(prev, next)
	if err != nil {
		fmt.Println(err)
		return
	}
	const self = "node-a"
	var lost, gained int
	for _, p := range moved {
		switch self {
		case prev.OwnerOf(p): // stop taking commands, finish in-flight ones, drop cached state
			lost++
		case next.OwnerOf(p): // load state fresh from the event log on first use
			gained++
		}
	}
	f, err := router.MovedFraction(prev, next)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d of %d partitions moved (%.0f%%); %s lost %d, gained %d\n",
		len(moved), next.PartitionCount(), 100*f, self, lost, gained)
	// Output:
	// 249 of 1021 partitions moved (24%); node-a lost 105, gained 10
}
