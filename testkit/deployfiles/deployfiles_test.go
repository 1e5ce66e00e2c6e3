package deployfiles_test

import (
	"strings"
	"testing"

	"github.com/rampart-io/rampart/testkit/deployfiles"
)

func TestRenderEveryNameOnce(t *testing.T) {
	vars := map[string]string{"ZK_DATA_DIR": "/d", "ZK_HOST": "127.0.0.1", "ZK_CLIENT_PORT": "1"}
	got, err := deployfiles.Render("deploy/cluster/zookeeper/zoo.cfg", vars)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "dataDir=/d\n") || strings.Contains(string(got), "${") {
		t.Fatalf("rendered:\n%s", got)
	}
	delete(vars, "ZK_HOST")
	if _, err := deployfiles.Render("deploy/cluster/zookeeper/zoo.cfg", vars); err == nil || !strings.Contains(err.Error(), "ZK_HOST") {
		t.Fatalf("a missing value: %v", err)
	}
	vars["ZK_HOST"], vars["EXTRA"] = "h", "x"
	if _, err := deployfiles.Render("deploy/cluster/zookeeper/zoo.cfg", vars); err == nil || !strings.Contains(err.Error(), "EXTRA") {
		t.Fatalf("an unused value: %v", err)
	}
}
