package ddl

import (
	"reflect"
	"strings"
	"testing"
)

func TestMigrationsAreUniqueAndParse(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("%d migrations", len(ms))
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			if strings.Contains(s, ";") || !strings.Contains(s, "{db}.") {
				t.Errorf("migration %d: statement not split or not database-qualified: %q", m.Version, s)
			}
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- comment\nCREATE TABLE a (\n  x UInt8\n);\n\nCREATE VIEW b AS SELECT 1;\nSELECT 2")
	want := []string{"CREATE TABLE a (\n  x UInt8\n)", "CREATE VIEW b AS SELECT 1", "SELECT 2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
}

func TestValidDatabase(t *testing.T) {
	for name, ok := range map[string]bool{"rampart": true, "_r2": true, "": false, "1abc": false, "a;drop": false, "a.b": false, "a`b": false} {
		if err := ValidDatabase(name); (err == nil) != ok {
			t.Errorf("ValidDatabase(%q) = %v", name, err)
		}
	}
}
