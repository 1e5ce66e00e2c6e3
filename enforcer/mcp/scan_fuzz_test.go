package mcp

import (
	"encoding/json"
	"testing"
)

// FuzzScan checks that the scanner accepts exactly what json.Valid
// accepts (both stop at the same nesting depth), and that with the
// duplicate check on it refuses only bodies it accepts without it.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2.5e-3,"x\u00e9",true,false,null],"b":{}}`,
		`"\ud800"`, `-0`, `01`, `1.`, `[1,]`, `{"a" 1}`, "\"\x7f\xff\"", `{"k":1,"K":2}`,
		`  [ ]  `, `{"a":{"b":{"a":1,"a":2}}}`, "\"\t\"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := scan(data, maxScanDepth, false)
		if valid := json.Valid(data); valid != (err == nil) {
			t.Fatalf("json.Valid = %v, scan = %v", valid, err)
		}
		if dupErr := scan(data, maxScanDepth, true); dupErr != nil && err == nil {
			if se := dupErr.(*scanError); se.kind != errDuplicate {
				t.Fatalf("duplicate check changed the verdict: %v", dupErr)
			}
		} else if err != nil && dupErr == nil {
			t.Fatalf("duplicate check accepted what scan refused: %v", err)
		}
	})
}
