package toolschema_test

import (
	"testing"

	"github.com/rampart-io/rampart/enforcer/toolschema"
)

// TestHashGolden pins the schema hash that tool_schema events and pins
// carry, so that a change to the canonical form (which would report every
// pinned schema as changed) cannot pass unnoticed. The canonical JSON was
// written by hand and its digest computed outside Go:
//
//	printf '%s' '<canonical>' | sha256sum
func TestHashGolden(t *testing.T) {
	// Keys out of order, white space, HTML characters, a non-ASCII letter
	// and a number written as 10.0 (kept as written, not normalised).
	const input = "{ \"type\" : \"object\",\n  \"required\": [\"q\"],\n" +
		"  \"properties\": {\"q\": {\"type\": \"string\", \"maxLength\": 10.0, \"description\": \"a<b & c>d \u00e9\"}}}\n"
	const canonical = `{"properties":{"q":{"description":"a<b & c>d é","maxLength":10.0,"type":"string"}},"required":["q"],"type":"object"}`
	const hash = "sha256:3ba170b08608b1ea7ce1db82f24af80e20b876386a85716b0276cd6beb23d870"

	got, err := toolschema.Canonical([]byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != canonical {
		t.Fatalf("canonical form\n got %s\nwant %s", got, canonical)
	}
	if h := toolschema.Hash(got); h != hash {
		t.Fatalf("hash %s, want %s", h, hash)
	}
}
