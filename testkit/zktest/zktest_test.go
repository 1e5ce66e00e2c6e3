package zktest_test

import (
	"testing"

	"github.com/rampart-io/rampart/testkit/zktest"
)

// The server started from deploy/cluster/zookeeper/zoo.cfg serves, and a
// stopped one is reported as such.
func TestStandaloneServes(t *testing.T) {
	s := zktest.New(t)
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Command("mntr"); err != nil || got == "" {
		t.Fatalf("mntr: %q, %v", got, err)
	}
	s.Stop()
	if err := s.Healthy(); err == nil {
		t.Fatal("a stopped server reads as healthy")
	}
}
