package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// opaAuthz is Open Policy Agent embedded through its Go API, answering
// forward-auth checks the way opa-envoy-plugin answers ext_authz ones: the
// input is the check's method, host, path and lower-cased headers plus the
// JSON body decoded, and the policy is prepared once and evaluated per
// request. It keeps no decision log: with the rego package alone there is
// none, and OPA's own (the server's decision-log plugin) is asynchronous
// and drops entries under pressure, where Rampart's record is synchronous
// and durable.
type opaAuthz struct {
	query rego.PreparedEvalQuery
}

// newOPAAuthz prepares module with the JWKS, issuer and audience as data.
// Verified tokens are cached as the OPA server caches them when
// caching.inter_query_builtin_value_cache.named.io_jwt is configured,
// matching the enforcer's verified-token cache.
func newOPAAuthz(ctx context.Context, module string, jwks []byte, issuer, audience string) (*opaAuthz, error) {
	store := inmem.NewFromObject(map[string]any{"jwks": string(jwks), "issuer": issuer, "audience": audience})
	cfg, err := cache.ParseCachingConfig([]byte(`{"inter_query_builtin_value_cache": {"named": {"io_jwt": {"max_num_entries": 10000}}}}`))
	if err != nil {
		return nil, fmt.Errorf("opa: caching config: %w", err)
	}
	q, err := rego.New(
		rego.Query("data.rampart.authz.decision"),
		rego.Module("authz.rego", module),
		rego.Store(store),
		rego.InterQueryBuiltinValueCache(cache.NewInterQueryValueCache(ctx, cfg)),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("opa: prepare: %w", err)
	}
	return &opaAuthz{query: q}, nil
}

// decision is what authz.rego's decision rule yields.
type decision struct {
	Allow  bool   `json:"allow"`
	Status int    `json:"status"`
	RuleID string `json:"rule_id"`
}

// decide evaluates one check.
func (o *opaAuthz) decide(ctx context.Context, method, host, path string, h http.Header, body []byte) (decision, error) {
	headers := make(map[string]any, len(h))
	for k, v := range h {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	in := map[string]any{
		"attributes": map[string]any{"request": map[string]any{"http": map[string]any{
			"method": method, "host": host, "path": path, "headers": headers,
		}}},
	}
	if len(body) > 0 {
		var parsed any
		if err := json.Unmarshal(body, &parsed); err == nil {
			in["parsed_body"] = parsed
		}
	}
	rs, err := o.query.Eval(ctx, rego.EvalInput(in))
	if err != nil {
		return decision{}, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return decision{}, errors.New("opa: no decision")
	}
	m, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return decision{}, fmt.Errorf("opa: decision is %T", rs[0].Expressions[0].Value)
	}
	var d decision
	d.Allow, _ = m["allow"].(bool)
	d.RuleID, _ = m["rule_id"].(string)
	if n, ok := m["status"].(json.Number); ok {
		s, _ := n.Int64()
		d.Status = int(s)
	}
	return d, nil
}

// ServeHTTP answers a forward-auth check carrying the original request in
// the same headers the enforcer reads, and its body, as Traefik's
// forwardBody sends it: 200 allows, anything else refuses.
func (o *opaAuthz) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d, err := o.decide(r.Context(), r.Header.Get("X-Original-Method"), r.Header.Get("X-Original-Host"),
		r.Header.Get("X-Original-URI"), r.Header, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	status := d.Status
	if d.Allow {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(d)
}
