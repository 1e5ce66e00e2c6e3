package enforcer

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/rampart-io/rampart/enforcer/extauthz"
)

// authorizer is the enforcer as an extauthz.Checker: Envoy's checks, gRPC
// or HTTP, go through the same decision path as proxied requests.
type authorizer struct{ e *Enforcer }

var _ extauthz.Checker = authorizer{}

func (a authorizer) Check(ctx context.Context, r *extauthz.Request) extauthz.Verdict {
	e := a.e
	c := &check{method: r.Method, host: r.Host, path: r.Path, rawPath: r.Path, header: r.Header}
	if u, err := url.ParseRequestURI(r.Path); err == nil {
		c.path, c.rawPath, c.query = u.Path, u.EscapedPath(), u.RawQuery
	}
	c.untrusted = !e.trusted(r.Peer)
	if e.extAuthzSecret != nil && !c.untrusted && !secretMatches(r.GatewaySecret, *e.extAuthzSecret) {
		c.refusal, c.refusalCode = fmt.Errorf("check without the gateway secret (%s)", extauthz.SecretHeader), CodeGatewayUnauthenticated
	}
	if r.BodySeen {
		c.body, c.bodyTruncated = bytes.NewReader(r.Body), r.BodyTruncated
	}
	if strings.HasPrefix(r.PeerPrincipal, "spiffe://") {
		c.peerSPIFFE = r.PeerPrincipal
	}
	o := e.decide(ctx, c)
	if !o.allow {
		h := http.Header{}
		h.Set(HeaderRequestID, o.id)
		o.code.setHeader(h)
		return extauthz.Verdict{Status: o.status, Header: h, Body: o.reply}
	}
	return extauthz.Verdict{Allow: true, Status: http.StatusOK, Header: o.upstreamHeader(), Remove: rampartHeaders(r.Header)}
}

// rampartHeaders names the client-supplied X-Rampart-* headers, the
// method and URL overrides of some frameworks, and names with "_" (which
// CGI backends read as the dashed ones), that the gateway must strip. The enforcer's own are overwritten instead (Envoy may apply
// removals after additions, which would drop them).
func rampartHeaders(h http.Header) []string {
	var out []string
	for k := range h {
		k = http.CanonicalHeaderKey(k)
		if strings.HasPrefix(k, headerPrefix) && k != HeaderRequestID && k != HeaderTenant && k != HeaderSubject ||
			slices.Contains(overrideHeaders, k) || strings.Contains(k, "_") {
			out = append(out, strings.ToLower(k))
		}
	}
	return out
}
