package enforcer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func extAuthzModes(trusted ...string) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) {
		forwardAuthMode(enforcer.GatewayNginx)(h, c)
		c.Modes = []string{enforcer.ModeExtAuthzGRPC, enforcer.ModeExtAuthzHTTP, enforcer.ModeForwardAuth}
		c.TrustedProxies = trusted
	}
}

// TestExtAuthzGRPC speaks Envoy's envoy.service.auth.v3.Authorization/Check
// to the enforcer over a real listener, as Envoy does.
func TestExtAuthzGRPC(t *testing.T) {
	h := newHarness(t, 2*time.Second, extAuthzModes())
	conn, err := grpc.NewClient(h.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	tok := "Bearer " + h.token(t)
	tests := []struct {
		name       string
		http       *authv3.AttributeContext_HttpRequest
		wantCode   code.Code
		wantStatus int
		wantAPI    string // error code in the denied body
		wantRule   string
		wantTool   string
	}{
		{
			name: "allowed, decided on the body",
			http: &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "tools.test", Path: "/mcp?x=1", Size: -1,
				Headers: map[string]string{"authorization": tok, ":path": "/mcp?x=1", "x-rampart-role": "admin"},
				Body:    toolCall("search", `{"q":"x"}`)},
			wantCode: code.Code_OK, wantStatus: 200, wantRule: "allow-search", wantTool: "search",
		},
		{
			name: "raw body denied by policy",
			http: &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "tools.test", Path: "/mcp",
				Headers: map[string]string{"authorization": tok}, RawBody: []byte(toolCall("shell", `{}`))},
			wantCode: code.Code_PERMISSION_DENIED, wantStatus: 403, wantAPI: "policy_denied", wantRule: "deny-shell", wantTool: "shell",
		},
		{
			name: "no body sent: path only",
			http: &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "tools.test", Path: "/mcp", Size: 120,
				Headers: map[string]string{"authorization": tok}},
			wantCode: code.Code_PERMISSION_DENIED, wantStatus: 403, wantAPI: "policy_denied", wantRule: "default-deny",
		},
		{
			name: "partial body",
			http: &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "tools.test", Path: "/mcp",
				Headers: map[string]string{"authorization": tok, "x-envoy-auth-partial-body": "true"}, Body: `{"jsonrpc":"2.0",`},
			wantCode: code.Code_RESOURCE_EXHAUSTED, wantStatus: 413, wantAPI: "body_too_large",
		},
		{
			name:     "unauthenticated",
			http:     &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "tools.test", Path: "/mcp", Body: toolCall("search", `{}`)},
			wantCode: code.Code_UNAUTHENTICATED, wantStatus: 401, wantAPI: "token_missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: tt.http}}})
			if err != nil {
				t.Fatal(err)
			}
			if code.Code(resp.GetStatus().GetCode()) != tt.wantCode {
				t.Fatalf("status %v, want %v: %v", resp.GetStatus(), tt.wantCode, resp)
			}
			var id string
			if tt.wantCode == code.Code_OK {
				ok := resp.GetOkResponse()
				got := map[string]string{}
				for _, o := range ok.GetHeaders() {
					got[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
				}
				id = got[enforcer.HeaderRequestID]
				if got[enforcer.HeaderTenant] != "acme" || got[enforcer.HeaderSubject] != "user:alice" || id == "" {
					t.Fatalf("headers to add = %v", got)
				}
				if strings.Join(ok.GetHeadersToRemove(), ",") != "x-rampart-role" {
					t.Errorf("headers to remove = %v", ok.GetHeadersToRemove())
				}
			} else {
				d := resp.GetDeniedResponse()
				var body map[string]any
				if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
					t.Fatalf("body %q: %v", d.GetBody(), err)
				}
				refusal := refusalOf(body)
				if int(d.GetStatus().GetCode()) != tt.wantStatus || refusal["code"] != tt.wantAPI {
					t.Fatalf("denied %d %s", d.GetStatus().GetCode(), d.GetBody())
				}
				id = refusal["request_id"]
			}
			dec := h.events(t, id, event.KindRequest, event.KindDecision)[event.KindDecision]
			if dec.Decision.RuleID != tt.wantRule || dec.Request.Tool != tt.wantTool || dec.Request.Host != "tools.test" || dec.Request.Path != "/mcp" {
				t.Errorf("decision event %+v / %+v", dec.Decision, dec.Request)
			}
		})
	}
}

// TestCheckEndpoints covers the HTTP check endpoints — Envoy's ext_authz
// HTTP service and forward-auth — and that checks from addresses outside
// trusted_proxies are refused.
func TestCheckEndpoints(t *testing.T) {
	trusted := newHarness(t, 2*time.Second, extAuthzModes())
	untrusted := newHarness(t, 2*time.Second, extAuthzModes("10.0.0.0/8"))
	tok := "Bearer " + trusted.token(t)
	fa := func(kv ...string) http.Header {
		h := http.Header{"Authorization": {tok}, enforcer.HeaderGatewaySecret: {testGatewaySecret}}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name       string
		h          *harness
		method     string
		path       string
		header     http.Header
		body       string
		wantStatus int
		wantCode   string
	}{
		{"ext_authz http allowed", trusted, "POST", "/_rampart/ext_authz/mcp", fa(), toolCall("search", `{}`), 200, ""},
		{"ext_authz http denied", trusted, "POST", "/_rampart/ext_authz/mcp", fa(), toolCall("shell", `{}`), 403, "policy_denied"},
		{"ext_authz http untrusted", untrusted, "POST", "/_rampart/ext_authz/mcp", fa(), toolCall("search", `{}`), 403, "proxy_untrusted"},
		{"nginx-style allowed", trusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-URI", "/gw/allowed?a=1", "X-Original-Host", "tools.test"), "", 200, ""},
		{"caddy-style to an nginx enforcer", trusted, "GET", "/_rampart/auth",
			fa("X-Forwarded-Method", "POST", "X-Forwarded-Uri", "/gw/allowed", "X-Forwarded-Host", "tools.test"), "", 400, "forwarded_headers_conflict"},
		{"both spellings", trusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-URI", "/gw/allowed", "X-Original-Host", "tools.test", "X-Forwarded-Uri", "/admin"), "", 400, "forwarded_headers_conflict"},
		{"repeated original URI", trusted, "GET", "/_rampart/auth",
			func() http.Header {
				h := fa("X-Original-Method", "POST", "X-Original-URI", "/gw/allowed", "X-Original-Host", "tools.test")
				h.Add("x-original-uri", "/admin")
				return h
			}(), "", 400, "forwarded_headers_conflict"},
		{"no gateway secret", trusted, "GET", "/_rampart/auth",
			func() http.Header {
				h := fa("X-Original-Method", "POST", "X-Original-URI", "/gw/allowed", "X-Original-Host", "tools.test")
				h.Del(enforcer.HeaderGatewaySecret)
				return h
			}(), "", 403, "gateway_unauthenticated"},
		{"wrong gateway secret", trusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-URI", "/gw/allowed", "X-Original-Host", "tools.test", enforcer.HeaderGatewaySecret, testGatewaySecret+"x"), "", 403, "gateway_unauthenticated"},
		{"client rampart header", trusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-URI", "/gw/allowed", "X-Original-Host", "tools.test", "X-Rampart-Task", "t1"), "", 400, "header_forbidden"},
		{"forward-auth denied", trusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-URI", "/gw/other", "X-Original-Host", "tools.test"), "", 403, "policy_denied"},
		{"forward-auth with body", trusted, "POST", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-Uri", "/mcp", "X-Original-Host", "tools.test"), toolCall("search", `{}`), 200, ""},
		{"forward-auth non-canonical", trusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-URI", "/x/../gw/allowed", "X-Original-Host", "tools.test"), "", 400, "path_invalid"},
		{"forward-auth headers missing", trusted, "GET", "/_rampart/auth", fa("X-Original-Method", "POST"), "", 400, "forwarded_headers_missing"},
		{"forward-auth untrusted", untrusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-URI", "/gw/allowed", "X-Original-Host", "tools.test"), "", 403, "proxy_untrusted"},
		{"forward-auth no token", trusted, "GET", "/_rampart/auth", http.Header{"X-Original-Method": {"POST"},
			"X-Original-Uri": {"/gw/allowed"}, "X-Original-Host": {"tools.test"}, enforcer.HeaderGatewaySecret: {testGatewaySecret}}, "", 401, "token_missing"},
		{"ext_authz http: a call sent with PUT", trusted, "PUT", "/_rampart/ext_authz/mcp", fa(), toolCall("shell", `{}`), 405, "mcp_method_not_allowed"},
		{"ext_authz http: gzip", trusted, "POST", "/_rampart/ext_authz/mcp", fa("Content-Encoding", "gzip"), compressed("gzip", toolCall("shell", `{}`)), 415, "body_encoding_unsupported"},
		{"forward-auth: lower-case method", trusted, "GET", "/_rampart/auth",
			fa("X-Original-Method", "post", "X-Original-URI", "/gw/allowed", "X-Original-Host", "tools.test"), "", 400, "method_invalid"},
		{"forward-auth: a call without jsonrpc", trusted, "POST", "/_rampart/auth",
			fa("X-Original-Method", "POST", "X-Original-Uri", "/mcp", "X-Original-Host", "tools.test"), `{"id":1,"method":"tools/call","params":{"name":"shell"}}`, 400, "rpc_invalid_request"},
		{"no proxy mode", trusted, "POST", "/mcp", fa(), toolCall("search", `{}`), 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tt.h.url+tt.path, strings.NewReader(tt.body))
			req.Header = tt.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || (tt.wantCode != "" && !strings.Contains(string(b), `"`+tt.wantCode)) {
				t.Fatalf("status %d body %s", resp.StatusCode, b)
			}
			if tt.wantStatus == 200 && (resp.Header.Get(enforcer.HeaderTenant) != "acme" || resp.Header.Get(enforcer.HeaderSubject) != "user:alice") {
				t.Errorf("headers = %v", resp.Header)
			}
			if tt.wantStatus == 404 {
				return
			}
			id := resp.Header.Get(enforcer.HeaderRequestID)
			dec := tt.h.events(t, id, event.KindDecision)[event.KindDecision]
			wantEffect := event.EffectDeny
			if tt.wantStatus == http.StatusOK {
				wantEffect = event.EffectAllow
			}
			if dec == nil || dec.Decision.Effect != wantEffect ||
				(tt.wantCode != "" && tt.wantCode != "policy_denied" && dec.Decision.Code != tt.wantCode) {
				t.Errorf("decision event %+v, want effect %s code %q", dec.Decision, wantEffect, tt.wantCode)
			}
		})
	}
	if trusted.hits.Load()+untrusted.hits.Load() != 0 {
		t.Error("a check endpoint forwarded a request")
	}
}
