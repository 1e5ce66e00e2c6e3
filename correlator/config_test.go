package correlator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/correlator"
)

// Each fixture in testdata/config decodes strictly onto the defaults; the
// good ones validate and the bad ones do not, with the error naming why.
func TestConfigFixtures(t *testing.T) {
	want := map[string]string{
		"partition-index.bad.yml":  "partition index 2 of count 2",
		"partition-count.bad.yml":  "partition index 0 of count 0",
		"horizon.bad.yml":          "recovery.horizon",
		"evidence.bad.yml":         "max_evidence",
		"unknown-key.bad.yml":      "rule_dir",
		"checkpoint.bad.yml":       "checkpoint",
		"instance.bad.yml":         `must begin with "correlator:"`,
		"partitioned.good.yml":     "",
		"inventory-reload.bad.yml": "reload must be positive",
		"inventory-key.bad.yml":    "path",
		"inventory.good.yml":       "",
	}
	files, _ := filepath.Glob("testdata/config/*.yml")
	if len(files) != len(want) {
		t.Fatalf("fixtures %v, want %d", files, len(want))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg := correlator.Defaults()
			err = configfile.Decode(data, &cfg)
			if err == nil {
				err = cfg.Validate()
			}
			msg, ok := want[filepath.Base(f)]
			switch {
			case !ok:
				t.Fatal("fixture without an expectation")
			case msg == "" && err != nil:
				t.Fatalf("good config refused: %v", err)
			case msg != "" && (err == nil || !strings.Contains(err.Error(), msg)):
				t.Fatalf("error %v, want one naming %q", err, msg)
			}
		})
	}
}

func TestPartitionsCoverEveryTenantOnce(t *testing.T) {
	for _, tenant := range []string{"", "acme", "globex", "t01", "a.b", "~"} {
		owners := 0
		for i := range 3 {
			if (correlator.Partition{Index: i, Count: 3}).Owns(tenant) {
				owners++
			}
		}
		if owners != 1 {
			t.Errorf("tenant %q owned by %d partitions", tenant, owners)
		}
	}
}
