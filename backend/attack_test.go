package backend_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/rampart-io/rampart/backend"
)

// TestTokenSpellingsRefused: spellings of a credential TestRefusals does
// not try — header members the enforcer never writes, claims in another
// JSON type, another serialisation or encoding — each refused, none
// reaching the handler. The fleet's own signature is on every one that
// is signed, so only the verifier's reading stands between them and the
// handler.
func TestTokenSpellingsRefused(t *testing.T) {
	f := newFleet(t)
	v, err := backend.New(f.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	h := v.Wrap(served())
	with := func(k string, val any) map[string]any { c := f.claims(); c[k] = val; return c }
	good := f.sign(f.claims(), nil)
	parts := strings.Split(good, ".")
	jsonSerialised, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
	for _, c := range []struct {
		name string
		edit func(*http.Request)
		code string
	}{
		{"no typ", withBearer(f.sign(f.claims(), func(h jws.Headers) { _ = h.Remove(jws.TypeKey) })), backend.CodeInvalidCredential},
		{"typ at+jwt with a parameter", withBearer(f.sign(f.claims(), func(h jws.Headers) { _ = h.Set(jws.TypeKey, "at+jwt; v=1") })), backend.CodeInvalidCredential},
		{"a jku the token names", withBearer(f.sign(f.claims(), func(h jws.Headers) { _ = h.Set(jws.JWKSetURLKey, "https://evil.test/jwks") })), backend.CodeInvalidCredential},
		{"an extension marked crit", withBearer(f.sign(f.claims(), func(h jws.Headers) {
			_ = h.Set("x-scope-override", "files.write")
			_ = h.Set(jws.CriticalKey, []string{"x-scope-override"})
		})), backend.CodeInvalidCredential},
		{"exp as a string", withBearer(f.sign(with("exp", "9999999999"), nil)), backend.CodeInvalidCredential},
		{"exp as a fraction", withBearer(f.sign(with("exp", 9999999999.5), nil)), backend.CodeInvalidCredential},
		{"aud twice in an array", withBearer(f.sign(with("aud", []string{audience, audience}), nil)), backend.CodeWrongAudience},
		{"aud in another letter case", withBearer(f.sign(with("aud", strings.ToUpper(audience)), nil)), backend.CodeWrongAudience},
		{"aud with a trailing slash", withBearer(f.sign(with("aud", audience+"/"), nil)), backend.CodeWrongAudience},
		{"tenant in another letter case", withBearer(f.sign(with("tenant", "ACME"), nil)), backend.CodeWrongTenant},
		{"an act link without a subject", withBearer(f.sign(with("act", map[string]any{"iss": "https://idp.test"}), nil)), backend.CodeInvalidCredential},
		{"JWS JSON serialisation", withBearer(string(jsonSerialised)), backend.CodeInvalidCredential},
		{"padded base64", withBearer(parts[0] + "=." + parts[1] + "." + parts[2]), backend.CodeInvalidCredential},
		{"a fourth segment", withBearer(good + ".x"), backend.CodeInvalidCredential},
		{"two spaces after Bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer  "+good) }, backend.CodeInvalidCredential},
		{"a tab after Bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer\t"+good) }, backend.CodeInvalidCredential},
		{"the token in Proxy-Authorization", func(r *http.Request) { r.Header.Set("Proxy-Authorization", "Bearer "+good) }, backend.CodeMissingCredential},
	} {
		t.Run(c.name, func(t *testing.T) {
			if a := call(t, h, c.edit); a.status == http.StatusOK || a.code != c.code {
				t.Fatalf("answered %d %q (%s), want %q", a.status, a.code, a.body, c.code)
			}
		})
	}
	if a := call(t, h, withBearer(good)); a.status != http.StatusOK {
		t.Fatalf("the control: %d %q", a.status, a.code)
	}
}
