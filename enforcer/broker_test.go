package enforcer_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/enforcer/credential"
	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/schema/stream"
)

// brokerPolicy is the broker's policy in the tests, as
// enforcer/policy.example.yaml writes it: the orchestrator may exchange
// for the CRM (rule's scopes and ttl), the CRM's backend may introspect
// the CRM's tokens, and the orchestrator may revoke them.
const brokerPolicy = `id: broker
rules:
  - id: exchange-crm
    match: 'destination == "rampart.token" && tenant == "acme" && args.audience in ["", "https://crm.test"]'
    condition: 'subject == "svc:orchestrator"'
    effect: allow
    obligations: {credential: {audience: "https://crm.test", scope: [crm.read, crm.write], ttl: 10m}}
  - id: exchange-bare
    match: 'destination == "rampart.token" && args.audience == "https://bare.test"'
    effect: allow
  - id: introspect-crm
    match: 'destination == "rampart.introspect" && subject == "svc:crm" && args.audience == "https://crm.test"'
    effect: allow
  - id: revoke-crm
    match: 'destination == "rampart.revoke" && subject == "svc:orchestrator" && args.audience == "https://crm.test"'
    effect: allow
`

// withBroker configures credentials and the broker's policy.
func withBroker(t *testing.T) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) {
		credentialsConfig(t, h, c)
		p := filepath.Join(h.dir, "broker-policy.yaml")
		if err := os.WriteFile(p, []byte(brokerPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		c.PolicyFile = p
	}
}

// caller is a token of the named service of tenant acme, acting for
// itself.
func (h *harness) caller(t *testing.T, sub string) string {
	return h.tokenWith(t, func(c map[string]any) { c["sub"] = sub; delete(c, "act"); delete(c, "sid") })
}

type brokerReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r brokerReply) code() string      { s, _ := r.body["code"].(string); return s }
func (r brokerReply) oauth() string     { s, _ := r.body["error"].(string); return s }
func (r brokerReply) requestID() string { return r.header.Get(enforcer.HeaderRequestID) }

// send posts body to the enforcer's path with the caller's token and
// header, and reads the answer.
func (h *harness) send(t *testing.T, method, path, caller, body string, header http.Header) brokerReply {
	t.Helper()
	req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+caller)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := brokerReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

var formHeader = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

func (h *harness) form(t *testing.T, path, caller string, f url.Values) brokerReply {
	t.Helper()
	return h.send(t, http.MethodPost, path, caller, f.Encode(), formHeader)
}

// exchangeForm asks for the subject's token, acted for by actor when set.
func exchangeForm(subject, actor string, more ...string) url.Values {
	f := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {subject}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
	if actor != "" {
		f.Set("actor_token", actor)
		f.Set("actor_token_type", "urn:ietf:params:oauth:token-type:jwt")
	}
	for i := 0; i+1 < len(more); i += 2 {
		f.Set(more[i], more[i+1])
	}
	return f
}

// refusedAndRecorded checks that r is the refusal want (status, OAuth
// error, code) and that its decision is recorded with that code and no
// credential was issued.
func (h *harness) refusedAndRecorded(t *testing.T, r brokerReply, status int, oauth, code string) {
	t.Helper()
	if r.status != status || r.oauth() != oauth || r.code() != code || r.body["error_description"] == "" || r.body["access_token"] != nil {
		t.Fatalf("answer %d %s, want %d %s/%s", r.status, r.raw, status, oauth, code)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	evs := h.events(t, r.requestID(), event.KindRequest, event.KindDecision)
	d := evs[event.KindDecision].Decision
	if code == "policy_denied" {
		code = "" // policy's own denial, recorded as the rule that decided
	}
	if d.Effect != event.EffectDeny || d.Code != code || d.RuleID == "" && code == "" {
		t.Errorf("recorded decision %+v, want deny %s", d, code)
	}
	if evs[event.KindCredential] != nil {
		t.Errorf("a refused exchange recorded a credential: %+v", evs[event.KindCredential].Credential)
	}
}

// Every endpoint refuses a caller it cannot authenticate, as
// invalid_client with the identity code, recorded.
func TestBrokerRefusesUnauthenticatedCallers(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	subject := h.token(t)
	for _, path := range []string{enforcer.TokenPath, enforcer.IntrospectPath, enforcer.RevokePath} {
		for name, caller := range map[string]string{
			"no token":       "",
			"garbage":        "not-a-token",
			"expired":        h.tokenWith(t, func(c map[string]any) { c["sub"] = "svc:orchestrator"; c["exp"] = time.Now().Add(-time.Hour).Unix() }),
			"another issuer": h.tokenWith(t, func(c map[string]any) { c["iss"] = "https://evil.test" }),
		} {
			t.Run(path+"/"+name, func(t *testing.T) {
				r := h.form(t, path, caller, exchangeForm(subject, "", "token", subject))
				if r.status != http.StatusUnauthorized || r.oauth() != "invalid_client" || r.code() == "" ||
					!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("answer %d %v %s", r.status, r.header, r.raw)
				}
				h.refusedAndRecorded(t, r, http.StatusUnauthorized, "invalid_client", r.code())
			})
		}
	}
	// Two Authorization fields: which one a proxy checked is a guess.
	orch := h.caller(t, "svc:orchestrator")
	r := h.send(t, http.MethodPost, enforcer.TokenPath, "", exchangeForm(subject, "").Encode(),
		http.Header{"Content-Type": formHeader["Content-Type"], "Authorization": {"Bearer " + orch, "Bearer " + orch}})
	h.refusedAndRecorded(t, r, http.StatusUnauthorized, "invalid_client", "token_malformed")
	if h.hits.Load() != 0 {
		t.Fatalf("%d broker calls reached the backend", h.hits.Load())
	}
}

// Spellings that mean the same to every HTTP and OAuth reader are
// accepted: the scheme and the media type in any letter case, a form's
// "+" for a space.
func TestBrokerAcceptsEquivalentSpellings(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	orch, subject := h.caller(t, "svc:orchestrator"), h.token(t)
	body := strings.Replace(exchangeForm(subject, "", "scope", "crm.read crm.write").Encode(), "%20", "+", 1)
	r := h.send(t, http.MethodPost, enforcer.TokenPath, "", body, http.Header{
		"Content-Type": {"Application/X-WWW-Form-URLEncoded;Charset=UTF-8"}, "Authorization": {"bEaReR " + orch}})
	if r.status != 200 || r.body["scope"] != "crm.read crm.write" {
		t.Fatalf("%d %s", r.status, r.raw)
	}
}

// A broker call is a POST of a UTF-8 form, each parameter once, nothing
// in the query string, within 64 KiB: anything else is refused before the
// tokens are read, recorded, and never forwarded.
func TestBrokerRequestShape(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	caller, subject := h.caller(t, "svc:orchestrator"), h.token(t)
	good := exchangeForm(subject, "").Encode()
	ct := func(v ...string) http.Header { return http.Header{"Content-Type": v} }
	jsonBody, _ := json.Marshal(map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": subject,
		"subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
	for name, tc := range map[string]struct {
		method, path, body string
		header             http.Header
		status             int
		code               string
	}{
		"GET":                    {http.MethodGet, enforcer.TokenPath, "", nil, 405, "oauth_method_not_allowed"},
		"PUT":                    {http.MethodPut, enforcer.RevokePath, good, formHeader, 405, "oauth_method_not_allowed"},
		"JSON body":              {http.MethodPost, enforcer.TokenPath, string(jsonBody), ct("application/json"), 415, "oauth_content_type"},
		"no Content-Type":        {http.MethodPost, enforcer.TokenPath, good, nil, 415, "oauth_content_type"},
		"two Content-Types":      {http.MethodPost, enforcer.TokenPath, good, ct("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"), 415, "oauth_content_type"},
		"latin-1 form":           {http.MethodPost, enforcer.TokenPath, good, ct("application/x-www-form-urlencoded; charset=iso-8859-1"), 415, "oauth_content_type"},
		"multipart":              {http.MethodPost, enforcer.IntrospectPath, good, ct("multipart/form-data; boundary=x"), 415, "oauth_content_type"},
		"gzip":                   {http.MethodPost, enforcer.TokenPath, good, http.Header{"Content-Type": formHeader["Content-Type"], "Content-Encoding": {"gzip"}}, 415, "body_encoding_unsupported"},
		"duplicate subject":      {http.MethodPost, enforcer.TokenPath, good + "&subject_token=" + url.QueryEscape(h.tokenFor(t, "user:mallory")), formHeader, 400, "oauth_param_repeated"},
		"duplicate grant":        {http.MethodPost, enforcer.TokenPath, good + "&grant_type=client_credentials", formHeader, 400, "oauth_param_repeated"},
		"duplicate token":        {http.MethodPost, enforcer.RevokePath, "token=a&token=b", formHeader, 400, "oauth_param_repeated"},
		"bad escape":             {http.MethodPost, enforcer.TokenPath, good + "&scope=%zz", formHeader, 400, "oauth_request_invalid"},
		"semicolon separator":    {http.MethodPost, enforcer.TokenPath, good + ";scope=crm.read", formHeader, 400, "oauth_request_invalid"},
		"not UTF-8":              {http.MethodPost, enforcer.TokenPath, good + "&scope=%ff", formHeader, 400, "oauth_request_invalid"},
		"parameters in query":    {http.MethodPost, enforcer.TokenPath + "?subject_token=" + url.QueryEscape(subject), good, formHeader, 400, "oauth_request_invalid"},
		"oversized":              {http.MethodPost, enforcer.TokenPath, good + "&pad=" + strings.Repeat("a", 64<<10), formHeader, 413, "body_too_large"},
		"token missing (revoke)": {http.MethodPost, enforcer.RevokePath, "token_type_hint=access_token", formHeader, 400, "oauth_request_invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.send(t, tc.method, tc.path, caller, tc.body, tc.header)
			want := "invalid_request"
			h.refusedAndRecorded(t, r, tc.status, want, tc.code)
			if tc.status == 405 && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
		})
	}
	// The control: the same form, well made, is granted.
	if r := h.send(t, http.MethodPost, enforcer.TokenPath, caller, good, ct("application/x-www-form-urlencoded; charset=UTF-8")); r.status != 200 {
		t.Fatalf("the well-formed exchange: %d %s", r.status, r.raw)
	}
	if h.hits.Load() != 0 {
		t.Fatalf("%d broker calls reached the backend", h.hits.Load())
	}
}

// unsignedToken is an alg none JWT with the IdP's claims.
func unsignedToken(claims map[string]any) string {
	hd, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(hd) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// Each way an exchange can ask for more than it may: refused with the
// OAuth error RFC 8693 names and Rampart's code, recorded, nothing minted.
func TestExchangeAbuse(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	orch := h.caller(t, "svc:orchestrator")
	subject := h.token(t)
	worker := h.caller(t, "agent:worker")
	idpClaims := map[string]any{"iss": "https://idp.test", "aud": "rampart", "sub": "user:alice", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix()}
	hsPayload, _ := json.Marshal(idpClaims)
	hs256, _ := jws.Sign(hsPayload, jws.WithKey(jwa.HS256, []byte("a shared secret of thirty-two bytes!")))
	granted := h.form(t, enforcer.TokenPath, orch, exchangeForm(subject, ""))
	if granted.status != 200 {
		t.Fatalf("the control exchange: %d %s", granted.status, granted.raw)
	}
	credentialToken := granted.body["access_token"].(string)
	for name, tc := range map[string]struct {
		caller string
		form   url.Values
		status int
		oauth  string
		code   string
	}{
		"grant type":                {orch, exchangeForm(subject, "", "grant_type", "client_credentials"), 400, "unsupported_grant_type", "grant_type_unsupported"},
		"no subject token":          {orch, exchangeForm("", ""), 400, "invalid_request", "oauth_request_invalid"},
		"subject token type":        {orch, exchangeForm(subject, "", "subject_token_type", "urn:ietf:params:oauth:token-type:saml2"), 400, "invalid_request", "token_type_unsupported"},
		"actor type alone":          {orch, exchangeForm(subject, "", "actor_token_type", "urn:ietf:params:oauth:token-type:jwt"), 400, "invalid_request", "oauth_request_invalid"},
		"requested type":            {orch, exchangeForm(subject, "", "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), 400, "invalid_request", "token_type_unsupported"},
		"expired subject":           {orch, exchangeForm(h.tokenWith(t, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), ""), 400, "invalid_request", "subject_token_invalid"},
		"HS256 subject":             {orch, exchangeForm(string(hs256), ""), 400, "invalid_request", "subject_token_invalid"},
		"alg none subject":          {orch, exchangeForm(unsignedToken(idpClaims), ""), 400, "invalid_request", "subject_token_invalid"},
		"unknown issuer subject":    {orch, exchangeForm(h.tokenWith(t, func(c map[string]any) { c["iss"] = "https://evil.test" }), ""), 400, "invalid_request", "subject_token_invalid"},
		"credential as subject":     {orch, exchangeForm(credentialToken, ""), 400, "invalid_request", "token_chained"},
		"credential as actor":       {orch, exchangeForm(subject, credentialToken), 400, "invalid_request", "token_chained"},
		"expired actor":             {orch, exchangeForm(subject, h.tokenWith(t, func(c map[string]any) { c["sub"] = "agent:worker"; c["exp"] = time.Now().Add(-time.Minute).Unix() })), 400, "invalid_request", "actor_token_invalid"},
		"actor of another tenant":   {orch, exchangeForm(subject, h.tokenWith(t, func(c map[string]any) { c["sub"] = "agent:worker"; c["tenant"] = "globex" })), 400, "invalid_request", "tenant_mismatch"},
		"subject of another tenant": {orch, exchangeForm(h.tokenWith(t, func(c map[string]any) { c["tenant"] = "globex" }), worker), 400, "invalid_request", "tenant_mismatch"},
		"caller of another tenant": {h.tokenWith(t, func(c map[string]any) { c["sub"] = "svc:orchestrator"; c["tenant"] = "globex"; delete(c, "act") }),
			exchangeForm(subject, ""), 400, "invalid_request", "tenant_mismatch"},
		"actor not in may_act": {orch, exchangeForm(h.tokenWith(t, func(c map[string]any) { c["may_act"] = map[string]any{"sub": "agent:planner"} }), worker),
			400, "invalid_request", "actor_token_invalid"},
		"scope escalation":                 {orch, exchangeForm(subject, "", "scope", "crm.read crm.admin"), 400, "invalid_scope", "scope_exceeded"},
		"audience not configured":          {orch, exchangeForm(subject, "", "audience", "https://payments.test"), 403, "unauthorized_client", "policy_denied"},
		"audience without credential":      {orch, exchangeForm(subject, "", "audience", "https://bare.test"), 400, "invalid_target", "target_not_granted"},
		"audience and resource differ":     {orch, exchangeForm(subject, "", "audience", "https://crm.test", "resource", "https://payments.test"), 400, "invalid_target", "target_not_granted"},
		"caller the policy does not allow": {h.caller(t, "svc:other"), exchangeForm(subject, ""), 403, "unauthorized_client", "policy_denied"},
	} {
		t.Run(name, func(t *testing.T) {
			h.refusedAndRecorded(t, h.form(t, enforcer.TokenPath, tc.caller, tc.form), tc.status, tc.oauth, tc.code)
		})
	}
}

// The exchange as it should go: the subject's token, acted for by the
// actor (whose own chain nests inside), for the rule's audience and the
// scope asked, expiring with the subject token; recorded as request,
// decision (naming the jti) and credential issued, in that order.
func TestExchangeIssuesDelegatedCredential(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	subjectExp := time.Now().Add(4 * time.Minute).Truncate(time.Second)
	subject := h.tokenWith(t, func(c map[string]any) {
		c["exp"] = subjectExp.Unix()
		c["task"] = "task-7"
		c["may_act"] = []any{map[string]any{"sub": "agent:planner"}, map[string]any{"sub": "agent:worker"}}
	})
	actor := h.tokenWith(t, func(c map[string]any) {
		c["sub"] = "agent:worker"
		c["act"] = map[string]any{"sub": "svc:orchestrator"}
	})
	r := h.form(t, enforcer.TokenPath, h.caller(t, "svc:orchestrator"), exchangeForm(subject, actor, "audience", "https://crm.test", "scope", "crm.read"))
	if r.status != 200 || r.body["token_type"] != "Bearer" || r.body["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" ||
		r.body["scope"] != "crm.read" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("answer %d %v %s", r.status, r.header, r.raw)
	}
	if in := r.body["expires_in"].(float64); in > 240 || in < 200 {
		t.Errorf("expires_in %v: the subject token's exp (4m) bounds the rule's 10m", in)
	}
	tok, err := jwt.ParseString(r.body["access_token"].(string), jwt.WithKeySet(h.fetchJWKS(t)), jwt.WithIssuer(credIssuer), jwt.WithAudience("https://crm.test"))
	if err != nil {
		t.Fatalf("the exchanged token does not verify against the JWKS: %v", err)
	}
	if !tok.Expiration().Equal(subjectExp) {
		t.Errorf("exp %v, want the subject token's %v", tok.Expiration(), subjectExp)
	}
	pc := tok.PrivateClaims()
	act, _ := pc["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	innermost, _ := inner["act"].(map[string]any)
	if tok.Subject() != "user:alice" || pc["tenant"] != "acme" || pc["task_id"] != "task-7" || pc["scope"] != "crm.read" ||
		act["sub"] != "agent:worker" || inner["sub"] != "svc:orchestrator" || innermost["sub"] != "agent:planner" || innermost["act"] != nil {
		t.Fatalf("sub %s claims %v: want alice, acted for by worker, via orchestrator, via planner", tok.Subject(), pc)
	}
	evs := h.events(t, r.requestID(), event.KindRequest, event.KindDecision, event.KindCredential)
	d, c := evs[event.KindDecision], evs[event.KindCredential]
	if d.Decision.Effect != event.EffectAllow || d.Decision.RuleID != "exchange-crm" || d.Decision.CredentialJTI != tok.JwtID() ||
		d.Identity.Subject != "svc:orchestrator" || d.Request.Destination != enforcer.DestinationToken {
		t.Errorf("decision %+v identity %+v", d.Decision, d.Identity)
	}
	if c.Credential.Action != event.CredentialIssued || c.Credential.JTI != tok.JwtID() || c.Identity.Subject != "user:alice" ||
		c.Identity.TaskID != "task-7" || len(c.Identity.Chain) != 3 || !c.Credential.Expires.Equal(subjectExp) || c.Seq <= d.Seq {
		t.Errorf("credential event %+v identity %+v", c.Credential, c.Identity)
	}
	if h.hits.Load() != 0 {
		t.Fatal("the exchange reached the backend")
	}
}

// revocations opens the revocations bucket the enforcer created.
func (h *harness) revocations(t *testing.T) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(h.nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), stream.Revocations)
	if err != nil {
		t.Fatalf("revocations bucket: %v", err)
	}
	return kv
}

// Introspection answers active with the claims only for a live, unrevoked
// credential of the caller's own tenant whose audience policy lets the
// caller see; anything else is active false, every reason recorded.
func TestIntrospection(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	orch, crm := h.caller(t, "svc:orchestrator"), h.caller(t, "svc:crm")
	mint := func(subject string) string {
		r := h.form(t, enforcer.TokenPath, orch, exchangeForm(subject, ""))
		if r.status != 200 {
			t.Fatalf("exchange: %d %s", r.status, r.raw)
		}
		return r.body["access_token"].(string)
	}
	live := mint(h.token(t))
	r := h.form(t, enforcer.IntrospectPath, crm, url.Values{"token": {live}})
	if r.status != 200 || r.body["active"] != true || r.body["sub"] != "user:alice" || r.body["aud"] != "https://crm.test" ||
		r.body["tenant"] != "acme" || r.body["jti"] == nil || r.body["scope"] != "crm.read crm.write" {
		t.Fatalf("a live token: %d %s", r.status, r.raw)
	}
	if d := h.events(t, r.requestID(), event.KindDecision)[event.KindDecision].Decision; d.Effect != event.EffectAllow || d.RuleID != "introspect-crm" {
		t.Errorf("recorded %+v", d)
	}

	// Tokens the credential package's tests forge in every shape: here
	// one of each family, through the endpoint.
	hsPayload, _ := json.Marshal(map[string]any{"iss": credIssuer, "sub": "user:alice", "aud": "https://crm.test", "tenant": "acme", "jti": "x", "exp": time.Now().Add(time.Hour).Unix()})
	hs256, _ := jws.Sign(hsPayload, jws.WithKey(jwa.HS256, []byte("a shared secret of thirty-two bytes!")))
	taskToken := mint(h.tokenWith(t, func(c map[string]any) { c["task"] = "task-ended" }))
	revokedToken := mint(h.token(t))
	if rr := h.form(t, enforcer.RevokePath, orch, url.Values{"token": {revokedToken}}); rr.status != 200 {
		t.Fatalf("revoke: %d %s", rr.status, rr.raw)
	}
	kv := h.revocations(t)
	ended, _ := json.Marshal(stream.Revocation{Tenant: "acme", TaskID: "task-ended", Reason: "completed", RevokedAt: time.Now()})
	if _, err := kv.Put(context.Background(), stream.TaskRevocationKey("acme", "task-ended"), ended); err != nil {
		t.Fatal(err)
	}
	if rr := h.form(t, enforcer.IntrospectPath, crm, url.Values{"token": {taskToken}}); rr.body["active"] != false {
		t.Fatalf("a token of an ended task: %s", rr.raw)
	}
	globexCRM := h.tokenWith(t, func(c map[string]any) { c["sub"] = "svc:crm"; c["tenant"] = "globex"; delete(c, "act") })
	for name, tc := range map[string]struct{ caller, token, why string }{
		"revoked (replayed)":       {crm, revokedToken, "revoked"},
		"task ended":               {crm, taskToken, "revoked"},
		"malformed":                {crm, "not.a.token", "not a token"},
		"HS256 with our issuer":    {crm, string(hs256), "not a token"},
		"the IdP's token":          {crm, h.token(t), "not a token"},
		"another tenant's caller":  {globexCRM, live, "tenant"},
		"caller policy won't show": {h.caller(t, "svc:billing"), live, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.form(t, enforcer.IntrospectPath, tc.caller, url.Values{"token": {tc.token}})
			if r.status != 200 || len(r.body) != 1 || r.body["active"] != false {
				t.Fatalf("answer %d %s, want only active false", r.status, r.raw)
			}
			d := h.events(t, r.requestID(), event.KindDecision)[event.KindDecision].Decision
			if d.Effect != event.EffectDeny || !strings.Contains(d.Reason, tc.why) {
				t.Errorf("recorded %+v, want a denial saying %q", d, tc.why)
			}
		})
	}
}

// Revocation writes the jti's record (reason revoked, by the caller) and
// records a credential revoked event before it answers 200; a token it
// cannot revoke — unknown, of another tenant — answers 200 as well with
// nothing written, and a caller policy does not allow is refused.
func TestRevocation(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	orch := h.caller(t, "svc:orchestrator")
	r := h.form(t, enforcer.TokenPath, orch, exchangeForm(h.tokenWith(t, func(c map[string]any) { c["task"] = "task-9" }), ""))
	token := r.body["access_token"].(string)
	claims, _ := jwt.ParseString(token, jwt.WithVerify(false))
	kv := h.revocations(t)
	key := stream.JTIRevocationKey(claims.JwtID())

	// Refused callers first: nothing is written for them.
	if rr := h.form(t, enforcer.RevokePath, h.caller(t, "svc:crm"), url.Values{"token": {token}}); rr.status != 403 || rr.code() != "policy_denied" {
		t.Fatalf("a caller policy does not allow: %d %s", rr.status, rr.raw)
	}
	globex := h.tokenWith(t, func(c map[string]any) { c["sub"] = "svc:orchestrator"; c["tenant"] = "globex"; delete(c, "act") })
	rr := h.form(t, enforcer.RevokePath, globex, url.Values{"token": {token}})
	if rr.status != 200 || rr.raw != "" {
		t.Fatalf("another tenant's revocation: %d %s", rr.status, rr.raw)
	}
	if d := h.events(t, rr.requestID(), event.KindDecision)[event.KindDecision].Decision; d.Effect != event.EffectDeny || !strings.Contains(d.Reason, "tenant") {
		t.Errorf("another tenant's attempt recorded as %+v", d)
	}
	if _, err := kv.Get(context.Background(), key); err == nil {
		t.Fatal("a refused or foreign revocation was written")
	}
	unknown := h.form(t, enforcer.RevokePath, orch, url.Values{"token": {"unknown-token"}, "token_type_hint": {"refresh_token"}})
	if unknown.status != 200 {
		t.Fatalf("an unknown token: %d %s", unknown.status, unknown.raw)
	}
	if d := h.events(t, unknown.requestID(), event.KindRequest, event.KindDecision)[event.KindDecision].Decision; d.Code != enforcer.CodeTokenInactive {
		t.Errorf("the unknown token's attempt recorded as %+v", d)
	}

	rr = h.form(t, enforcer.RevokePath, orch, url.Values{"token": {token}, "token_type_hint": {"access_token"}})
	if rr.status != 200 {
		t.Fatalf("revoke: %d %s", rr.status, rr.raw)
	}
	entry, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("no revocation record once answered: %v", err)
	}
	rev, err := stream.DecodeRevocation(entry.Value())
	if err != nil || rev.JTI != claims.JwtID() || rev.Reason != "revoked" || rev.By != "svc:orchestrator" || rev.Tenant != "acme" ||
		rev.TaskID != "task-9" || !rev.Until.Equal(claims.Expiration()) {
		t.Fatalf("record %+v %v", rev, err)
	}
	evs := h.events(t, rr.requestID(), event.KindDecision, event.KindCredential)
	if c := evs[event.KindCredential]; c.Credential.Action != event.CredentialRevoked || c.Credential.JTI != claims.JwtID() ||
		c.Identity.Subject != "user:alice" || c.Identity.TaskID != "task-9" {
		t.Errorf("revoked event %+v %+v", c.Credential, c.Identity)
	}
	// Again: still 200, the first record stands, no second event.
	again := h.form(t, enforcer.RevokePath, orch, url.Values{"token": {token}})
	if again.status != 200 {
		t.Fatalf("a second revocation: %d", again.status)
	}
	if evs := h.events(t, again.requestID(), event.KindDecision); evs[event.KindCredential] != nil || !strings.Contains(evs[event.KindDecision].Decision.Reason, "already") {
		t.Errorf("second revocation recorded %+v", evs)
	}
}

// The broker is served where credentials are: proxy mode only. In
// forward-auth and ext_authz modes, and in proxy mode without
// credentials, its paths answer 404 and are never forwarded: a subject
// token sent there reaches no backend.
func TestBrokerOnlyWhereCredentialsAre(t *testing.T) {
	for name, opt := range map[string]func(*harness, *enforcer.Config){
		"forward_auth":         forwardAuthMode("nginx"),
		"ext_authz_http":       func(h *harness, c *enforcer.Config) { c.Modes = []string{enforcer.ModeExtAuthzHTTP} },
		"proxy, no credential": func(*harness, *enforcer.Config) {},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, 2*time.Second, opt)
			for _, path := range []string{enforcer.TokenPath, enforcer.IntrospectPath, enforcer.RevokePath} {
				r := h.form(t, path, h.caller(t, "svc:orchestrator"), exchangeForm(h.token(t), "", "token", "x"))
				if r.status != http.StatusNotFound {
					t.Errorf("%s: %d %s", path, r.status, r.raw)
				}
			}
			if h.hits.Load() != 0 {
				t.Fatalf("%d broker calls forwarded", h.hits.Load())
			}
		})
	}
}

// Concurrent revocations of one credential race to one record: every
// caller gets 200, and exactly one credential revoked event is recorded.
func TestRevocationRace(t *testing.T) {
	h := newHarness(t, 2*time.Second, withBroker(t))
	orch := h.caller(t, "svc:orchestrator")
	token := h.form(t, enforcer.TokenPath, orch, exchangeForm(h.token(t), "")).body["access_token"].(string)
	const n = 8
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := h.form(t, enforcer.RevokePath, orch, url.Values{"token": {token}})
			if r.status != 200 {
				t.Errorf("revoke: %d %s", r.status, r.raw)
			}
			ids <- r.requestID()
		})
	}
	wg.Wait()
	close(ids)
	mine := map[string]bool{}
	for id := range ids {
		mine[id] = true
	}
	var revoked, decisions int
	h.readEvents(t, 10*time.Second, func(batch []*event.Event) bool {
		for _, e := range batch {
			if !mine[e.RequestID] {
				continue
			}
			switch e.Kind {
			case event.KindCredential:
				revoked++
			case event.KindDecision:
				decisions++
			}
		}
		return decisions < n
	})
	if decisions != n || revoked != 1 {
		t.Fatalf("%d decisions, %d revoked events; want %d and exactly 1", decisions, revoked, n)
	}
}

// With JetStream away an exchange is refused: a token whose issue the
// record lacks is never handed out.
func TestExchangeWithoutRecordHandsOutNothing(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, withBroker(t))
	orch, subject := h.caller(t, "svc:orchestrator"), h.token(t)
	h.nats.Shutdown()
	h.nats.WaitForShutdown()
	for _, path := range []string{enforcer.TokenPath, enforcer.IntrospectPath, enforcer.RevokePath} {
		r := h.form(t, path, orch, exchangeForm(subject, "", "token", "x"))
		if r.status != http.StatusServiceUnavailable || r.code() != "audit_unavailable" || r.oauth() != "temporarily_unavailable" || strings.Contains(r.raw, "access_token") {
			t.Errorf("%s: %d %s", path, r.status, r.raw)
		}
	}
}

// An expired credential, signed by the fleet's own key, is inactive at
// introspection and revokes nothing.
func TestExpiredCredentialIsInactive(t *testing.T) {
	var cfg credential.Config
	h := newHarness(t, 2*time.Second, withBroker(t), func(_ *harness, c *enforcer.Config) { cfg = c.Credentials })
	past := func() time.Time { return time.Now().Add(-time.Hour) }
	m, err := credential.New(cfg, credential.WithClock(past))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := m.Mint(&credential.Request{Tenant: "acme", Subject: "user:alice", Audience: "https://crm.test", Scope: []string{"crm.read"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(tok.Raw); err != nil {
		t.Fatalf("the control: at its own clock the token is live: %v", err)
	}
	r := h.form(t, enforcer.IntrospectPath, h.caller(t, "svc:crm"), url.Values{"token": {tok.Raw}})
	if r.status != 200 || len(r.body) != 1 || r.body["active"] != false {
		t.Fatalf("an expired credential: %d %s", r.status, r.raw)
	}
	if d := h.events(t, r.requestID(), event.KindDecision)[event.KindDecision].Decision; !strings.Contains(d.Reason, "expired") {
		t.Errorf("recorded %+v", d)
	}
	if rr := h.form(t, enforcer.RevokePath, h.caller(t, "svc:orchestrator"), url.Values{"token": {tok.Raw}}); rr.status != 200 {
		t.Fatalf("revoking an expired credential: %d", rr.status)
	}
	if _, err := h.revocations(t).Get(context.Background(), stream.JTIRevocationKey(tok.JTI)); err == nil {
		t.Fatal("an expired credential was written to the revocations")
	}
}
