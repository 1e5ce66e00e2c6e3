// Command gendashboards writes Rampart's Grafana provisioning files
// (`make dashboards`): go run ./dashboards/cmd/gendashboards -out dashboards/provisioning
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/rampart-io/rampart/dashboards/build"
)

func main() {
	out := flag.String("out", "dashboards/provisioning", "the provisioning directory to write")
	flag.Parse()
	if err := build.Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gendashboards:", err)
		os.Exit(1)
	}
}
