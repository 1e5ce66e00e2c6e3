package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rampart-io/rampart/testkit/chtest"
)

// TestInvestigateExitStatuses: each way an investigation can end has its
// own status, which scripts rely on.
func TestInvestigateExitStatuses(t *testing.T) {
	addr, _ := chtest.Server(t)
	db := chtest.Open(t, addr).Database()
	common := []string{"-clickhouse", addr, "-database", db}
	cases := []struct {
		name string
		args []string
		code int    // 0: a plain error
		msg  string // in the error
	}{
		{"nothing recorded", append([]string{"session", "acme", "s-1"}, common...), exitNotFound, "no events found"},
		{"request not recorded", append([]string{"request", "req-1", "-json"}, common...), exitNotFound, "no events found"},
		{"too few arguments", append([]string{"session", "acme"}, common...), 2, "takes 2 argument(s), got 1"},
		{"credential not recorded", append([]string{"credential", "acme", "jti-1", "-csv"}, common...), exitNotFound, "no events found"},
		{"credential without its tenant", append([]string{"credential", "jti-1"}, common...), 2, "takes 2 argument(s), got 1"},
		{"bad time", append([]string{"blast-radius", "acme", "agent:a", "-since", "yesterday"}, common...), 2, "bad time"},
		{"blast radius needs since", append([]string{"blast-radius", "acme", "agent:a"}, common...), 2, "-since is required"},
		{"json and csv", append([]string{"request", "r", "-json", "-csv"}, common...), 2, "exclude each other"},
		{"a flag it does not read", []string{"session", "-config", "x", "acme", "s-1"}, 0, "flag provided but not defined: -config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := runInvestigate(context.Background(), c.args)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error with %q", err, c.msg)
			}
			var ex exitError
			if got := errors.As(err, &ex); got != (c.code != 0) || got && ex.code != c.code {
				t.Fatalf("exit status of %v: %d, want %d", err, ex.code, c.code)
			}
		})
	}
}
