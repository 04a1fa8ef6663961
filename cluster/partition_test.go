package cluster

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/concursus-go/concursus/internal/testsupport"
)

// cutTransport is memberlist's network transport with a switch that cuts
// this member off from a set of addresses, both ways: packets to them and
// dials to them fail silently or with an error, packets from them are
// dropped. Cutting each side's transport from the other's address is a
// network partition; clearing the set heals it.
type cutTransport struct {
	*memberlist.NetTransport
	packets chan *memberlist.Packet
	// done stops the delivery of packets to memberlist; stopped, closed
	// once the NetTransport has shut down, stops the forwarder, which
	// drains the NetTransport's packet channel until then (its listener
	// blocks on that unbuffered channel, and its Shutdown waits for it).
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	mu      struct {
		sync.Mutex
		cut map[string]bool
	}
}

func newCutTransport(t *testing.T) *cutTransport {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	ct := &cutTransport{NetTransport: nt, packets: make(chan *memberlist.Packet), done: make(chan struct{}), stopped: make(chan struct{})}
	ct.mu.cut = map[string]bool{}
	ct.wg.Add(1)
	go func() {
		defer ct.wg.Done()
		for {
			select {
			case <-ct.stopped:
				return
			case p := <-nt.PacketCh():
				if ct.isCut(p.From.String()) {
					continue
				}
				select {
				case ct.packets <- p:
				case <-ct.done: // shutting down: dropped
				}
			}
		}
	}()
	return ct
}

func (ct *cutTransport) addr() string {
	return fmt.Sprintf("127.0.0.1:%d", ct.GetAutoBindPort())
}

func (ct *cutTransport) set(addrs ...string) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	clear(ct.mu.cut)
	for _, a := range addrs {
		ct.mu.cut[a] = true
	}
}

func (ct *cutTransport) isCut(addr string) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.mu.cut[addr]
}

func (ct *cutTransport) PacketCh() <-chan *memberlist.Packet { return ct.packets }

func (ct *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if ct.isCut(addr) {
		return time.Now(), nil // lost on the way
	}
	return ct.NetTransport.WriteTo(b, addr)
}

func (ct *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if ct.isCut(addr) {
		return nil, errors.New("cut off")
	}
	return ct.NetTransport.DialTimeout(addr, timeout)
}

// WriteToAddress and DialAddressTimeout are what memberlist calls on a
// transport that knows node names, as NetTransport does.
func (ct *cutTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return ct.WriteTo(b, addr.Addr)
}

func (ct *cutTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return ct.DialTimeout(addr.Addr, timeout)
}

func (ct *cutTransport) Shutdown() error {
	var err error
	ct.once.Do(func() {
		close(ct.done)
		err = ct.NetTransport.Shutdown()
		close(ct.stopped)
		ct.wg.Wait()
	})
	return err
}

var partitionControl = flag.Bool("cluster.partition-control", false, "also run TestPartitionHeals without rejoin, to see the sides stay apart")

// aliveIDs is the sorted ids of the members c holds alive.
func aliveIDs(c *Cluster) string { return fmt.Sprint(c.View().AliveIDs()) }

// wantAlive says what was seen alive when it is not what is wanted.
func wantAlive(want, seen string) error {
	if seen != want {
		return errors.New("saw " + seen)
	}
	return nil
}

// A member cut off from the others by a network partition is declared dead
// on both sides. Once the network heals, the sides find each other again by
// themselves, also after memberlist stopped gossiping to the dead.
func TestPartitionHeals(t *testing.T) {
	for _, rejoin := range []bool{true, false} {
		t.Run(fmt.Sprintf("rejoin=%v", rejoin), func(t *testing.T) {
			if !rejoin && !*partitionControl {
				t.Skip("the control run (without rejoin, 20 s) runs with -cluster.partition-control")
			}
			ids := []string{"a", "b", "c"}
			trs := make([]*cutTransport, 3)
			cs := make([]*Cluster, 3)
			for i, id := range ids {
				trs[i] = newCutTransport(t)
				var seeds []string
				if i > 0 {
					seeds = []string{trs[0].addr()}
				}
				cfg := localConfig(id, seeds...)
				cfg.transport = trs[i]
				cfg.RejoinInterval = 200 * time.Millisecond
				if !rejoin {
					cfg.RejoinInterval = -1
				}
				cs[i] = startJoined(t, cfg)
			}
			all := fmt.Sprint(ids)
			for _, c := range cs {
				testsupport.EventuallyErr(t, 10*time.Second, "three members alive", func() error { return wantAlive(all, aliveIDs(c)) })
			}
			// Cut c off, both ways.
			trs[0].set(trs[2].addr())
			trs[1].set(trs[2].addr())
			trs[2].set(trs[0].addr(), trs[1].addr())
			testsupport.EventuallyErr(t, 20*time.Second, "c dead on a and b, a and b dead on c", func() error {
				return wantAlive("[a b][a b][c]", aliveIDs(cs[0])+aliveIDs(cs[1])+aliveIDs(cs[2]))
			})
			// Past the time memberlist still gossips to the dead.
			time.Sleep(6 * time.Second)
			for _, tr := range trs {
				tr.set()
			}
			if !rejoin {
				time.Sleep(8 * time.Second)
				seen := aliveIDs(cs[0]) + aliveIDs(cs[1]) + aliveIDs(cs[2])
				if seen != "[a b][a b][c]" {
					t.Logf("without rejoin the sides found each other anyway: %s", seen)
				} else {
					t.Logf("without rejoin the sides stay apart 8s after the heal: %s", seen)
				}
				return
			}
			healed := testsupport.EventuallyErr(t, 20*time.Second, "all three alive everywhere after the heal", func() error {
				return wantAlive(all+all+all, aliveIDs(cs[0])+aliveIDs(cs[1])+aliveIDs(cs[2]))
			})
			t.Logf("all members agree %v after the heal", healed.Round(time.Millisecond))
		})
	}
}
