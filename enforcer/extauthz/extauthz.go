// Package extauthz answers Envoy's external authorization protocol
// (envoy.service.auth.v3), over gRPC and over HTTP, for the enforcer. It
// only translates: a CheckRequest (or the HTTP authorization request) becomes
// a Request, a Checker — the enforcer's one decision path — decides and
// records, and its Verdict becomes Envoy's OkHttpResponse or
// DeniedHttpResponse. Envoy then forwards or refuses the original request.
package extauthz

import (
	"context"
	"net/http"
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// HeaderPartialBody is set by Envoy when with_request_body.allow_partial_message
// sent only the first max_request_bytes of a body. A decision on part of a
// tool call is no decision, so such requests are refused as too large.
const HeaderPartialBody = "X-Envoy-Auth-Partial-Body"

// Request is what a gateway tells about the request it holds.
type Request struct {
	// Method, Host and Path (with the query) are the original request's.
	Method, Host, Path string
	// Header holds the original request's headers, canonical keys.
	Header http.Header
	// Body is the original body when the gateway sent it (with_request_body).
	Body []byte
	// BodySeen reports whether Body is the whole body the client sent, as
	// opposed to a body the gateway did not pass on.
	BodySeen bool
	// BodyTruncated reports that the gateway sent only part of the body.
	BodyTruncated bool
	// Peer is the address the check came from: the gateway, not the client.
	Peer netip.Addr
	// PeerPrincipal is the client's mTLS identity as the gateway verified it
	// (attributes.source.principal), e.g. a SPIFFE ID; empty without mTLS.
	PeerPrincipal string
	// GatewaySecret is what the gateway presented as the shared secret:
	// the gRPC call's x-rampart-gateway-secret metadata (Envoy's
	// grpc_service.initial_metadata), or the check request's
	// X-Rampart-Gateway-Secret header (authorization_request.headers_to_add).
	// Each value given counts: more than one is no secret.
	GatewaySecret []string
}

// SecretHeader carries the gateway's shared secret to the check services.
const SecretHeader = "X-Rampart-Gateway-Secret"

// Verdict is the Checker's answer.
type Verdict struct {
	// Allow lets the gateway forward the request.
	Allow bool
	// Status is the HTTP status for the client when refused (401, 403, 413,
	// 503...), or 200 when allowed.
	Status int
	// Header is added to the upstream request when allowed (X-Rampart-*),
	// and sent to the client when refused.
	Header http.Header
	// Remove names client-supplied headers the gateway must strip before
	// forwarding: headers that only the enforcer may set.
	Remove []string
	// Body is the JSON answer for the client when refused.
	Body []byte
}

// Checker decides on, and records, one request. The enforcer implements it.
type Checker interface {
	Check(ctx context.Context, r *Request) Verdict
}

// Server is the gRPC Authorization service.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	checker Checker
}

// NewServer returns an Authorization service answering with c.
func NewServer(c Checker) *Server { return &Server{checker: c} }

// Register adds the Authorization service answering with c to g.
func Register(g *grpc.Server, c Checker) { authv3.RegisterAuthorizationServer(g, NewServer(c)) }

var _ authv3.AuthorizationServer = (*Server)(nil)

// Check implements envoy.service.auth.v3.Authorization/Check. Refusals
// are answers, not RPC errors: an RPC error makes Envoy apply its own
// failure_mode_allow, which must never decide for Rampart.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := &Request{
		Method:        h.GetMethod(),
		Host:          h.GetHost(),
		Path:          h.GetPath(),
		Header:        grpcHeaders(h),
		PeerPrincipal: attrs.GetSource().GetPrincipal(),
	}
	switch {
	case len(h.GetRawBody()) > 0:
		r.Body, r.BodySeen = h.GetRawBody(), true
	case h.GetBody() != "":
		r.Body, r.BodySeen = []byte(h.GetBody()), true
	case h.GetSize() == 0:
		r.BodySeen = true // an empty body, known to be empty
	}
	if r.BodySeen && strings.EqualFold(r.Header.Get(HeaderPartialBody), "true") {
		r.BodyTruncated = true
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		r.GatewaySecret = md.Get(strings.ToLower(SecretHeader))
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
			r.Peer = ap.Addr().Unmap()
		}
	}
	return response(s.checker.Check(ctx, r)), nil
}

// grpcHeaders reads the request headers of a CheckRequest: the header map
// (encode_raw_headers) when Envoy sent one, else the string map. Pseudo
// headers (:path, :method...) are dropped; they are in the other fields.
func grpcHeaders(h *authv3.AttributeContext_HttpRequest) http.Header {
	out := http.Header{}
	if hm := h.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		for _, kv := range hm.GetHeaders() {
			v := kv.GetValue()
			if v == "" {
				v = string(kv.GetRawValue())
			}
			if !strings.HasPrefix(kv.GetKey(), ":") {
				out.Add(kv.GetKey(), v)
			}
		}
		return out
	}
	for k, v := range h.GetHeaders() {
		// Envoy joins repeated headers with ","; they stay joined, which
		// is how the enforcer would read them from the HTTP request too.
		if !strings.HasPrefix(k, ":") {
			out.Set(k, v)
		}
	}
	return out
}

func response(v Verdict) *authv3.CheckResponse {
	if v.Allow {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         headerOptions(v.Header),
				HeadersToRemove: v.Remove,
			}},
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode(v.Status))},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(v.Status)},
			Headers: headerOptions(v.Header),
			Body:    string(v.Body),
		}},
	}
}

// headerOptions overwrites rather than appends, so a client-supplied header
// of the same name never survives next to the enforcer's.
func headerOptions(h http.Header) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: k, Value: v},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
	}
	return out
}

// grpcCode is the CheckResponse status for an HTTP refusal; Envoy uses the
// DeniedHttpResponse status for the client, the code for its stats.
func grpcCode(status int) code.Code {
	switch status {
	case http.StatusUnauthorized:
		return code.Code_UNAUTHENTICATED
	case http.StatusServiceUnavailable:
		return code.Code_UNAVAILABLE
	case http.StatusRequestEntityTooLarge:
		return code.Code_RESOURCE_EXHAUSTED
	case http.StatusBadRequest:
		return code.Code_INVALID_ARGUMENT
	}
	return code.Code_PERMISSION_DENIED
}
