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
	defaults := func() sample {
		v := sample{Addr: "default", Wait: time.Second}
		v.Inner.N = 7
		return v
	}
	cases := []struct {
		name, in, wantErr string
		want              func(*sample) // what the decode changes in the defaults
	}{
		{name: "known keys", in: "addr: x\nwait: 2s\ninner: {n: 3}\n",
			want: func(v *sample) { v.Addr, v.Wait, v.Inner.N = "x", 2*time.Second, 3 }},
		{name: "empty keeps defaults", in: "", want: func(*sample) {}},
		{name: "comment only keeps defaults", in: "# nothing set\n", want: func(*sample) {}},
		{name: "a key set keeps the others", in: "wait: 5m\n", want: func(v *sample) { v.Wait = 5 * time.Minute }},
		{name: "nested key keeps its siblings' defaults", in: "inner: {n: 0}\n", want: func(v *sample) { v.Inner.N = 0 }},
		{name: "unknown key", in: "adr: x\n", wantErr: "field adr not found"},
		{name: "unknown nested key", in: "inner: {m: 1}\n", wantErr: "field m not found"},
		{name: "bad duration", in: "wait: soon\n", wantErr: "cannot unmarshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := defaults()
			err := Decode([]byte(tc.in), &v)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.want(&want)
			if v != want {
				t.Fatalf("decoded %+v, want %+v", v, want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	v := sample{Addr: "default"}
	if err := Load("", &v); err != nil || v.Addr != "default" {
		t.Fatalf("no file: v = %+v, err = %v", v, err)
	}
	path := dir + "/c.yaml"
	if err := os.WriteFile(path, []byte("addr: from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Load(path, &v); err != nil || v.Addr != "from-file" {
		t.Fatalf("v = %+v, err = %v", v, err)
	}
	if err := Load(dir+"/absent.yaml", &v); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("missing file: err = %v, want one naming it", err)
	}
	bad := dir + "/bad.yaml"
	_ = os.WriteFile(bad, []byte("adr: x\n"), 0o600)
	if err := Load(bad, &v); err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "adr") {
		t.Fatalf("unknown key: err = %v, want one naming the file and the key", err)
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
