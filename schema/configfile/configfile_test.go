package configfile

import (
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
