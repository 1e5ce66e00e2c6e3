package subject_test

import (
	"fmt"

	"github.com/rampart-io/rampart/schema/subject"
)

// Tenant names are escaped into one subject token, so that no tenant can
// name a wildcard or reach into another tenant's subjects; Parse gives the
// name back.
func ExampleFor() {
	for _, tenant := range []string{"acme", "acme.prod", "*"} {
		subj, err := subject.For(tenant, "decision")
		if err != nil {
			fmt.Println(tenant, err)
			continue
		}
		back, kind, _ := subject.Parse(subj)
		fmt.Printf("%s -> %s -> %s %s\n", tenant, subj, back, kind)
	}
	// Output:
	// acme -> rampart.v1.acme.decision -> acme decision
	// acme.prod -> rampart.v1.acme~2Eprod.decision -> acme.prod decision
	// * -> rampart.v1.~2A.decision -> * decision
}
