package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// b64 is strict base64url without padding (RFC 7515 §2): padding, the
// standard alphabet and non-canonical trailing bits are all refused, so
// one token has exactly one spelling and one cache key.
var b64 = base64.RawURLEncoding.Strict()

// maxJSONDepth bounds nesting in a header or claim set; act chains are
// bounded separately, by max_chain_depth.
const maxJSONDepth = 32

// forbiddenHeaders are JOSE header parameters that make a token bring its
// own key (jku, x5u, x5c, jwk; RFC 8725 §3.10 — never followed, so refuse
// rather than ignore), demand extensions this verifier does not implement
// (crit, b64), or mark JWE or a nested JWT (enc, zip, cty; §2.8).
var forbiddenHeaders = []string{"jku", "x5u", "x5c", "jwk", "crit", "b64", "enc", "zip", "cty"}

// compact is a JWS in compact serialization, split and decoded, not yet
// verified.
type compact struct {
	signingInput string // header "." payload, what the signature covers
	signature    []byte
	payload      []byte
	alg, kid     string
	typ          string
	hasTyp       bool
	iss          string // unverified; only selects the issuer whose keys to try
}

// parseCompact checks the structure and header of token. Everything here
// runs before any key lookup or signature work, so junk costs little.
func parseCompact(token string) (*compact, error) {
	switch strings.Count(token, ".") {
	case 2:
	case 4:
		return nil, fail(TokenMalformed, errors.New("five parts: JWE and nested tokens are not accepted"))
	default:
		return nil, fail(TokenMalformed, errors.New("not three dot-separated parts"))
	}
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ := strings.Cut(rest, ".")
	hb, err := b64.DecodeString(h)
	if err != nil {
		return nil, fail(TokenMalformed, fmt.Errorf("header: %w", err))
	}
	pb, err := b64.DecodeString(p)
	if err != nil {
		return nil, fail(TokenMalformed, fmt.Errorf("payload: %w", err))
	}
	sig, err := b64.DecodeString(s)
	if err != nil {
		return nil, fail(TokenMalformed, fmt.Errorf("signature: %w", err))
	}
	c := &compact{signingInput: token[:len(h)+1+len(p)], signature: sig, payload: pb}

	head, err := strictObject(hb)
	if err != nil {
		return nil, fail(TokenMalformed, fmt.Errorf("header: %w", err))
	}
	for _, name := range forbiddenHeaders {
		if _, ok := head[name]; ok {
			return nil, fail(TokenHeader, fmt.Errorf("header parameter %q is not accepted", name))
		}
	}
	str := func(name string, dst *string) (bool, error) {
		raw, ok := head[name]
		if !ok {
			return false, nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return true, fail(TokenHeader, fmt.Errorf("header %q is not a string", name))
		}
		return true, nil
	}
	if _, err := str("alg", &c.alg); err != nil {
		return nil, err
	}
	if _, err := str("kid", &c.kid); err != nil {
		return nil, err
	}
	if c.hasTyp, err = str("typ", &c.typ); err != nil {
		return nil, err
	}
	if err := checkKID(c.kid); err != nil {
		return nil, fail(TokenHeader, err)
	}

	claims, err := strictObject(pb)
	if err != nil {
		return nil, fail(TokenMalformed, fmt.Errorf("claims: %w", err))
	}
	raw, ok := claims["iss"]
	if !ok {
		return nil, fail(TokenIssuer, errors.New("no iss claim"))
	}
	if err := json.Unmarshal(raw, &c.iss); err != nil {
		return nil, fail(TokenIssuer, errors.New("iss claim is not a string"))
	}
	return c, nil
}

// checkKID accepts the kid spellings IdPs use (thumbprints, UUIDs, dates,
// standard and URL-safe base64) and nothing that reads like a path or a
// query. Keys are only ever looked up in a map, so this is defence in
// depth, and it keeps hostile strings out of logs and audit events.
func checkKID(kid string) error {
	if kid == "" {
		return errors.New("no kid in header")
	}
	if len(kid) > 256 {
		return errors.New("kid longer than 256 bytes")
	}
	if strings.Contains(kid, "..") {
		return fmt.Errorf("kid %q contains \"..\"", kid)
	}
	for i := range len(kid) {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~+/=:", c) >= 0) {
			return fmt.Errorf("kid %q has the character %q", kid, c)
		}
	}
	return nil
}

// typeAccepted reports whether typ is one of types, compared as RFC 7515
// §4.1.9 says: without case, and with "application/" implied.
func typeAccepted(typ string, types []string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		return strings.TrimPrefix(s, "application/")
	}
	t := norm(typ)
	for _, a := range types {
		if norm(a) == t {
			return true
		}
	}
	return false
}

// strictObject decodes a JSON object, refusing what lenient parsers let
// through: duplicate member names at any depth (two parsers may pick
// different values, RFC 7515 §4 / RFC 8259 §4), trailing data, and deep
// nesting. It returns the top-level members.
func strictObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	if err := walkObject(dec, 1); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// walkObject reads the members of an object whose '{' was just read, and
// its closing '}'.
func walkObject(dec *json.Decoder, depth int) error {
	seen := make(map[string]struct{})
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		if _, dup := seen[name]; dup {
			return fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = struct{}{}
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

func walkValue(dec *json.Decoder, depth int) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := t.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
	}
	if d == '{' {
		return walkObject(dec, depth+1)
	}
	for dec.More() {
		if err := walkValue(dec, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}
