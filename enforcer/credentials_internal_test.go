package enforcer

import (
	"net/http"
	"testing"

	"github.com/rampart-io/rampart/enforcer/credential"
)

// Header maps built by hand (or by a transport that does not canonicalise)
// may hold a credential under any spelling: every one goes.
func TestReplaceCredentialsAnySpelling(t *testing.T) {
	c := credential.Config{}
	c.SetDefaults()
	h := http.Header{
		"authorization": {"Bearer agent"}, "Authorization": {"Bearer agent2"}, "COOKIE": {"a=1"},
		"x-api-key": {"k"}, "Proxy-authorization": {"Basic x"}, "X-Amz-Security-Token": {"s"}, "Accept": {"*/*"},
	}
	replaceCredentials(h, c.StripHeaders, "minted")
	if len(h) != 2 || h.Get("Accept") != "*/*" {
		t.Errorf("left %v", h)
	}
	if got := h["Authorization"]; len(got) != 1 || got[0] != "Bearer minted" {
		t.Errorf("Authorization %q", got)
	}
}
