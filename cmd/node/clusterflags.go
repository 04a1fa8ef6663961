package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/router"
)

// clusterFlags are the cluster settings of the node command, as given.
type clusterFlags struct {
	enabled       boolValue
	join          string
	gossipAddr    string
	gossipPort    int
	advertiseAddr string
	advertisePort int
	key           string
	profile       string
	partitions    int
	handoverGrace durationValue
	// The idempotency filter.
	noFilter      boolValue
	raftAddr      string
	raftAdvertise string
	window        durationValue
	voters        int
	failureGrace  durationValue
}

// clusterOnly are the settings that mean nothing outside cluster mode.
var clusterOnly = []string{"gossip-addr", "gossip-port", "advertise-addr", "advertise-port", "gossip-key", "gossip-profile", "partitions", "handover-grace",
	"no-idempotency", "raft-addr", "raft-advertise", "idempotency-window", "raft-voters", "raft-failure-grace"}

// config returns the node's cluster configuration, nil when it runs
// alone. given names the settings set by flag or environment: cluster mode
// is --cluster or a non-empty --join, and a cluster setting given outside
// it is refused rather than ignored. Errors name the flag.
func (f *clusterFlags) config(given map[string]bool) (*node.ClusterConfig, error) {
	seeds := splitList(f.join)
	if !bool(f.enabled) {
		if len(seeds) > 0 {
			if given["cluster"] {
				return nil, fmt.Errorf("--join %s asks for cluster mode and --cluster=false refuses it", f.join)
			}
		} else {
			var stray []string
			for _, name := range clusterOnly {
				if given[name] {
					stray = append(stray, "--"+name)
				}
			}
			if len(stray) > 0 {
				return nil, fmt.Errorf("%s only apply to cluster mode: add --cluster (or --join)", strings.Join(stray, ", "))
			}
			return nil, nil
		}
	}
	var key []byte
	if f.key != "" {
		var err error
		if key, err = cluster.ParseSecretKey(f.key); err != nil {
			return nil, gossipFlagError(err)
		}
	}
	profile := cluster.Profile(f.profile)
	switch profile {
	case cluster.ProfileLAN, cluster.ProfileWAN, cluster.ProfileLocal:
	default:
		return nil, fmt.Errorf("--gossip-profile %q: want lan, wan or local", f.profile)
	}
	if f.partitions < 1 || f.partitions > router.MaxPartitionCount {
		return nil, fmt.Errorf("--partitions %d must be between 1 and %d", f.partitions, router.MaxPartitionCount)
	}
	if f.handoverGrace <= 0 {
		return nil, fmt.Errorf("--handover-grace %v must be positive", time.Duration(f.handoverGrace))
	}
	gossip := cluster.Config{
		BindAddr:      f.gossipAddr,
		BindPort:      f.gossipPort,
		AdvertiseAddr: f.advertiseAddr,
		AdvertisePort: f.advertisePort,
		Join:          seeds,
		SecretKey:     key,
		Profile:       profile,
	}
	// Check the addresses here, so that a typo is a usage error naming
	// the flag rather than a failed start. The node sets the id.
	check := gossip
	check.NodeID, check.Meta.NodeID = "check", "check"
	check.JoinBackoff, check.JoinMaxBackoff, check.Tombstones = time.Second, time.Second, 1
	if err := check.Validate(); err != nil {
		return nil, gossipFlagError(err)
	}
	for _, a := range []struct{ flag, value string }{{"--raft-addr", f.raftAddr}, {"--raft-advertise", f.raftAdvertise}} {
		if a.value == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.value); err != nil {
			return nil, fmt.Errorf("%s %q is not host:port", a.flag, a.value)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("%s %q: port out of range", a.flag, a.value)
		}
	}
	switch {
	case f.window <= 0:
		return nil, fmt.Errorf("--idempotency-window %v must be positive", time.Duration(f.window))
	case f.voters < 1 || f.voters > 5:
		return nil, fmt.Errorf("--raft-voters %d must be between 1 and 5", f.voters)
	case f.failureGrace <= 0:
		return nil, fmt.Errorf("--raft-failure-grace %v must be positive", time.Duration(f.failureGrace))
	}
	return &node.ClusterConfig{
		Gossip:        gossip,
		Ring:          router.Config{PartitionCount: f.partitions},
		HandoverGrace: time.Duration(f.handoverGrace),
		Idempotency: node.IdempotencyConfig{
			Disabled:      bool(f.noFilter),
			BindAddr:      f.raftAddr,
			AdvertiseAddr: f.raftAdvertise,
			Window:        time.Duration(f.window),
			Voters:        f.voters,
			FailureGrace:  time.Duration(f.failureGrace),
		},
	}, nil
}

// gossipFlagError rewrites an error of package cluster's config checks
// in terms of the flags.
func gossipFlagError(err error) error {
	msg := strings.TrimPrefix(err.Error(), cluster.ErrInvalidConfig.Error()+": ")
	return errors.New(gossipFlagNames.Replace(msg))
}

// gossipFlagNames rewrites cluster.Config's field names in its errors as
// the flags that set them.
var gossipFlagNames = strings.NewReplacer(
	"BindAddr", "--gossip-addr",
	"BindPort", "--gossip-port",
	"AdvertiseAddr", "--advertise-addr",
	"AdvertisePort", "--advertise-port",
	"Join[", "--join item [",
	"SecretKey", "--gossip-key",
)
