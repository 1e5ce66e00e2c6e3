# The load test's policy in Rego: the same 20 ordered rules as rampart.yaml,
# first applicable rule wins, none means default-deny. Input is shaped as
# Envoy's ext_authz check (opa-envoy-plugin): attributes.request.http with
# lower-cased headers, and parsed_body, the JSON-RPC body decoded.
#
# The bearer token is verified here with io.jwt.decode_verify against the
# same JWKS, issuer and audience the enforcer uses (signature, exp, nbf, iss,
# aud). The enforcer checks more (alg allow-list, typ, kid, header
# injection, may_act, chain depth limit); those are not replicated.
package rampart.authz

http := input.attributes.request.http

token := t if {
	startswith(http.headers.authorization, "Bearer ")
	t := substring(http.headers.authorization, 7, -1)
}

verified := io.jwt.decode_verify(token, {"cert": data.jwks, "iss": data.issuer, "aud": data.audience})

claims := verified[2] if verified[0]

tenant := claims.tenant

actor := claims.act.sub

default actor := ""

# The delegation chain: every "sub" nested in the act claims.
chain := [v | walk(claims.act, [p, v]); count(p) > 0; p[count(p) - 1] == "sub"]

chain_depth := count(chain)

rpc_method := input.parsed_body.method

tool := input.parsed_body.params.name if rpc_method == "tools/call"

default tool := ""

args := input.parsed_body.params.arguments

# Rule ids and effects, in the order of rampart.yaml.
rules := [
	{"id": "deny-deep-delegation", "effect": "deny"},
	{"id": "deny-shell", "effect": "deny"},
	{"id": "deny-delete", "effect": "deny"},
	{"id": "deny-unknown-tenant", "effect": "deny"},
	{"id": "allow-mcp-handshake", "effect": "allow"},
	{"id": "allow-calendar-read", "effect": "allow"},
	{"id": "allow-crm-lookup", "effect": "allow"},
	{"id": "allow-ticket-create", "effect": "allow"},
	{"id": "allow-ticket-update", "effect": "allow"},
	{"id": "allow-wiki-search", "effect": "allow"},
	{"id": "allow-jira-query", "effect": "allow"},
	{"id": "allow-metrics-query", "effect": "allow"},
	{"id": "allow-log-search", "effect": "allow"},
	{"id": "allow-translate", "effect": "allow"},
	{"id": "allow-summarize", "effect": "allow"},
	{"id": "allow-code-search", "effect": "allow"},
	{"id": "allow-slack-post", "effect": "allow"},
	{"id": "allow-read-files", "effect": "allow"},
	{"id": "allow-internal-email", "effect": "allow"},
	{"id": "allow-search", "effect": "allow"}
]

# The indexes of the rules that apply.

# deny-deep-delegation
applies contains 0 if {
	chain_depth > 3
}

# deny-shell
applies contains 1 if {
	tool == "shell"
}

# deny-delete
applies contains 2 if {
	tool == "delete_records"
}

# deny-unknown-tenant
applies contains 3 if {
	not tenant in {"acme", "globex", "initech"}
}

# allow-mcp-handshake
applies contains 4 if {
	rpc_method in {"initialize", "notifications/initialized", "tools/list", "ping"}
}

# allow-calendar-read
applies contains 5 if {
	tool == "calendar_read"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-crm-lookup
applies contains 6 if {
	tool == "crm_lookup"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-ticket-create
applies contains 7 if {
	tool == "ticket_create"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-ticket-update
applies contains 8 if {
	tool == "ticket_update"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-wiki-search
applies contains 9 if {
	tool == "wiki_search"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-jira-query
applies contains 10 if {
	tool == "jira_query"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-metrics-query
applies contains 11 if {
	tool == "metrics_query"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-log-search
applies contains 12 if {
	tool == "log_search"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-translate
applies contains 13 if {
	tool == "translate"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-summarize
applies contains 14 if {
	tool == "summarize"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-code-search
applies contains 15 if {
	tool == "code_search"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-slack-post
applies contains 16 if {
	tool == "slack_post"
	tenant == "acme"
	startswith(actor, "agent:")
}

# allow-read-files
applies contains 17 if {
	tool == "read_file"
	startswith(args.path, "/data/")
	not startswith(args.path, "/data/private/")
}

# allow-internal-email
applies contains 18 if {
	tool == "send_email"
	endswith(args.to, "@acme.example")
}

# allow-search
applies contains 19 if {
	tool == "search"
	tenant == "acme"
	startswith(actor, "agent:")
	chain_depth <= 3
	count(args.q) <= 256
}

default decision := {"allow": false, "status": 401, "rule_id": "unauthenticated"}

decision := {"allow": false, "status": 403, "rule_id": "default-deny"} if {
	claims
	count(applies) == 0
}

decision := d if {
	claims
	count(applies) > 0
	r := rules[min(applies)]
	d := {"allow": r.effect == "allow", "status": status[r.effect], "rule_id": r.id}
}

status := {"allow": 200, "deny": 403}
