package configfile

import (
	"os"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Addr  string        `yaml:"addr"`
	Wait  time.Duration `yaml:"wait"`
	Inner struct {
		N int `yaml:"n"`
	} `yaml:"inner"`
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, in, wantErr string
	}{
		{"known keys", "addr: x\nwait: 2s\ninner: {n: 3}\n", ""},
		{"empty keeps defaults", "", ""},
		{"unknown key", "adr: x\n", "field adr not found"},
		{"unknown nested key", "inner: {m: 1}\n", "field m not found"},
		{"bad duration", "wait: soon\n", "cannot unmarshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := sample{Addr: "default"}
			err := Decode([]byte(tc.in), &v)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadSection(t *testing.T) {
	path := t.TempDir() + "/c.yaml"
	data := "other: {anything: 1}\nmine:\n  addr: here\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	var v sample
	if err := LoadSection(path, "mine", &v); err != nil || v.Addr != "here" {
		t.Fatalf("v = %+v, err = %v", v, err)
	}
	if err := LoadSection(path, "absent", &v); err == nil {
		t.Fatal("missing section accepted")
	}
	bad := t.TempDir() + "/bad.yaml"
	_ = os.WriteFile(bad, []byte("mine: {adr: x}\n"), 0o600)
	if err := LoadSection(bad, "mine", &v); err == nil || !strings.Contains(err.Error(), "adr") {
		t.Fatalf("unknown key in section: err = %v", err)
	}
}
