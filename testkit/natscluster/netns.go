package natscluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os/exec"
	"strings"
	"testing"
)

// netns is a network namespace joined to this one by a veth pair: the host
// end has hostIP, the namespace's end nsIP, both in a /30 of 10.231.0.0/16
// chosen at random and not in use here. Deleting the namespace deletes
// the pair.
type netns struct {
	name, hostDev, nsDev string
	hostIP, nsIP         string
}

func newNetns(t testing.TB) *netns {
	t.Helper()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	n := &netns{name: "rampart-" + id, hostDev: "rph" + id, nsDev: "rpn" + id}
	inUse, err := exec.Command("ip", "-o", "addr").Output()
	if err != nil {
		t.Fatalf("natscluster: ip addr: %v (network namespaces need iproute2 and root)", err)
	}
	for {
		b, _ := rand.Int(rand.Reader, big.NewInt(1<<14))
		third, fourth := b.Int64()>>6, (b.Int64()&63)*4
		n.hostIP, n.nsIP = fmt.Sprintf("10.231.%d.%d", third, fourth+1), fmt.Sprintf("10.231.%d.%d", third, fourth+2)
		if !strings.Contains(string(inUse), " "+n.hostIP+"/") && !strings.Contains(string(inUse), " "+n.nsIP+"/") {
			break
		}
	}
	t.Cleanup(func() {
		// The namespace's processes are gone by now (their cleanups ran
		// first): deleting it removes both ends of the pair.
		_ = exec.Command("ip", "netns", "del", n.name).Run()
		_ = exec.Command("ip", "link", "del", n.hostDev).Run()
	})
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.hostDev, "type", "veth", "peer", "name", n.nsDev},
		{"link", "set", n.nsDev, "netns", n.name},
		{"addr", "add", n.hostIP + "/30", "dev", n.hostDev},
		{"link", "set", n.hostDev, "up"},
		{"-n", n.name, "addr", "add", n.nsIP + "/30", "dev", n.nsDev},
		{"-n", n.name, "link", "set", n.nsDev, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("natscluster: ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return n
}

// link sets the namespace's end of the pair up or down. Down, the host end
// loses its carrier: traffic either way is dropped, while the host's own
// address stays usable by the nodes listening on it.
func (n *netns) link(t testing.TB, state string) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", n.name, "link", "set", n.nsDev, state).CombinedOutput(); err != nil {
		t.Fatalf("natscluster: link %s: %v: %s", state, err, out)
	}
}
