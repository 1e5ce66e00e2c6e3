package backend_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/rampart-io/rampart/backend"
)

// TestIntrospectionCallerToken: the backend authenticates itself to the
// introspection endpoint, which, as the enforcer's, refuses a caller it
// cannot identify. A token rotated in place is picked up on the 401 it
// causes; a token file that is gone or holds no one token fails closed.
func TestIntrospectionCallerToken(t *testing.T) {
	f := newFleet(t)
	v, err := backend.New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	h := v.Wrap(served())
	if a := call(t, h, withBearer(f.sign(f.claims(), nil))); a.status != http.StatusOK {
		t.Fatalf("with the caller token: answered %d %q", a.status, a.code)
	}
	f.rotateCallerToken("caller-token-2")
	hits := f.introHits.Load()
	if a := call(t, h, withBearer(f.sign(f.claims(), nil))); a.status != http.StatusOK || f.introHits.Load() != hits+2 {
		t.Fatalf("after rotation: answered %d %q after %d introspections, want 200 after a 401 and a retry", a.status, a.code, f.introHits.Load()-hits)
	}
	// Another token than the endpoint accepts: the 401 is no answer.
	f.accept.Store("someone-else")
	if a := call(t, h, withBearer(f.sign(f.claims(), nil))); a.status != http.StatusServiceUnavailable || a.code != backend.CodeRevocationUnavailable {
		t.Fatalf("caller refused: answered %d %q", a.status, a.code)
	}
	for name, content := range map[string]string{"empty": "\n", "two tokens": "a b", "oversized": string(make([]byte, 17<<10))} {
		t.Run(name, func(t *testing.T) {
			f.rotateCallerToken("x")
			writeFile(t, f.tokenFile, content)
			v, err := backend.New(f.config())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = v.Close() })
			if a := call(t, v.Wrap(served()), withBearer(f.sign(f.claims(), nil))); a.status != http.StatusServiceUnavailable || a.code != backend.CodeRevocationUnavailable {
				t.Fatalf("token file %s: answered %d %q", name, a.status, a.code)
			}
		})
	}
}

// TestIntrospectionTokenSource: a TokenSource is asked on every
// introspection; its error fails closed.
func TestIntrospectionTokenSource(t *testing.T) {
	f := newFleet(t)
	cfg := f.config()
	cfg.IntrospectionTokenFile = ""
	var fail bool
	v, err := backend.New(cfg, backend.WithIntrospectionToken(func(context.Context) (string, error) {
		if fail {
			return "", errors.New("workload API down")
		}
		return f.accept.Load().(string), nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	h := v.Wrap(served())
	if a := call(t, h, withBearer(f.sign(f.claims(), nil))); a.status != http.StatusOK {
		t.Fatalf("token source: answered %d %q", a.status, a.code)
	}
	fail = true
	if a := call(t, h, withBearer(f.sign(f.claims(), nil))); a.status != http.StatusServiceUnavailable || a.code != backend.CodeRevocationUnavailable {
		t.Fatalf("token source failing: answered %d %q", a.status, a.code)
	}
}

// TestIntrospectionNeedsCallerCredential: an introspection URL without a
// caller credential could never be answered, so New refuses it, as it
// refuses two credentials.
func TestIntrospectionNeedsCallerCredential(t *testing.T) {
	f := newFleet(t)
	cfg := f.config()
	src := backend.WithIntrospectionToken(func(context.Context) (string, error) { return "t", nil })
	if _, err := backend.New(cfg, src); err == nil {
		t.Error("token file and token source both accepted")
	}
	cfg.IntrospectionTokenFile = ""
	if _, err := backend.New(cfg); err == nil {
		t.Error("introspection without a caller credential accepted")
	}
	cfg.IntrospectionURL = ""
	v, err := backend.New(cfg)
	if err != nil {
		t.Fatalf("no introspection, no caller credential: %v", err)
	}
	_ = v.Close()
}
