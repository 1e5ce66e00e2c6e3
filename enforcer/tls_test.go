package enforcer_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-io/rampart/enforcer"
	"github.com/rampart-io/rampart/schema/event"
)

// testCA issues certificates for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	file string
}

func newCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool(), file: filepath.Join(dir, "ca.pem")}
	ca.pool.AddCert(cert)
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue returns a key pair for a server (ip set) or a client (uris set).
func (ca *testCA) issue(t *testing.T, ip net.IP, uris ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if ip != nil {
		tmpl.IPAddresses, tmpl.ExtKeyUsage = []net.IP{ip}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// withTLS serves the enforcer over TLS with a certificate from ca, and
// mTLS when clientCA.
func withTLS(t *testing.T, ca *testCA, clientCA, require bool) func(*harness, *enforcer.Config) {
	return func(h *harness, c *enforcer.Config) {
		srv := ca.issue(t, net.ParseIP("127.0.0.1"))
		key, _ := x509.MarshalECPrivateKey(srv.PrivateKey.(*ecdsa.PrivateKey))
		c.TLS.CertFile, c.TLS.KeyFile = filepath.Join(h.dir, "srv.pem"), filepath.Join(h.dir, "srv.key")
		_ = os.WriteFile(c.TLS.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate[0]}), 0o600)
		_ = os.WriteFile(c.TLS.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key}), 0o600)
		if clientCA {
			c.TLS.ClientCAFile, c.TLS.RequireClientCert = ca.file, require
		}
	}
}

func tlsClient(ca *testCA, h2 bool, certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, Certificates: certs}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestMTLSSPIFFEID(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir)
	const workload = "spiffe://acme.test/agent/planner"
	h := newHarness(t, 2*time.Second, withTLS(t, ca, true, true))
	client := ca.issue(t, nil, workload)
	tests := []struct {
		name       string
		sub        string // token subject; "" sends no token
		h2         bool
		wantStatus int
		wantCode   string
	}{
		{"user token, workload cert, HTTP/1.1", "user:alice", false, http.StatusOK, ""},
		{"user token, workload cert, h2", "user:alice", true, http.StatusOK, ""},
		{"JWT-SVID matching the cert", workload, false, http.StatusOK, ""},
		{"JWT-SVID of another workload", "spiffe://acme.test/agent/other", false, http.StatusUnauthorized, string(enforcer.CodeSPIFFEMismatch)},
		{"cert but no token", "", false, http.StatusUnauthorized, "token_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.url+"/mcp", strings.NewReader(toolCall("search", `{}`)))
			if tt.sub != "" {
				req.Header.Set("Authorization", "Bearer "+h.tokenFor(t, tt.sub))
			}
			resp, err := tlsClient(ca, tt.h2, client).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantCode) {
				t.Fatalf("status %d body %s", resp.StatusCode, b)
			}
			if want := map[bool]int{false: 1, true: 2}[tt.h2]; resp.ProtoMajor != want {
				t.Errorf("protocol %s", resp.Proto)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			dec := h.events(t, resp.Header.Get(enforcer.HeaderRequestID), event.KindDecision)[event.KindDecision]
			if dec.Identity == nil || dec.Identity.SPIFFEID != workload || dec.Identity.Subject != tt.sub {
				t.Errorf("identity = %+v", dec.Identity)
			}
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/mcp", strings.NewReader(toolCall("search", `{}`)))
		req.Header.Set("Authorization", "Bearer "+h.token(t))
		if resp, err := tlsClient(ca, false).Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("status %d without a client certificate", resp.StatusCode)
		}
	})
}

// TestStreamingPassThrough checks that server-sent events reach the client
// as the upstream sends them — the first event while the upstream is still
// blocked — over HTTP/1.1, h2c and h2 over TLS.
func TestStreamingPassThrough(t *testing.T) {
	ca := newCA(t, t.TempDir())
	tests := []struct {
		name   string
		opt    func(*harness, *enforcer.Config)
		client func() *http.Client
		proto  int
	}{
		{"HTTP/1.1", func(*harness, *enforcer.Config) {}, func() *http.Client { return http.DefaultClient }, 1},
		{"h2c", func(_ *harness, c *enforcer.Config) { c.H2C = true }, func() *http.Client {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			return &http.Client{Transport: &http.Transport{Protocols: &p}}
		}, 2},
		{"h2 over TLS", withTLS(t, ca, false, false), func() *http.Client { return tlsClient(ca, true) }, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			finished := make(chan struct{})
			h := newHarness(t, 2*time.Second, tt.opt, func(h *harness, c *enforcer.Config) {
				c.Upstream = h.backend(t, func(w http.ResponseWriter, r *http.Request) {
					defer close(finished)
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "event: message\ndata: {\"n\":1}\n\n")
					http.NewResponseController(w).Flush()
					<-release // the second event waits for the client's word
					_, _ = io.WriteString(w, "event: message\ndata: {\"n\":2}\n\n")
				}).URL
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/mcp", strings.NewReader(toolCall("search", `{}`)))
			req.Header.Set("Authorization", "Bearer "+h.token(t))
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := tt.client().Do(req)
			if err != nil {
				close(release)
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != tt.proto || resp.StatusCode != http.StatusOK {
				close(release)
				t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
			}
			r := bufio.NewReader(resp.Body)
			first := readEvent(t, r)
			select {
			case <-finished:
				t.Fatal("upstream finished before the client saw the first event")
			default:
			}
			close(release)
			second := readEvent(t, r)
			if !strings.Contains(first, `{"n":1}`) || !strings.Contains(second, `{"n":2}`) {
				t.Fatalf("events %q, %q", first, second)
			}
		})
	}
}

// readEvent reads one SSE event (up to its blank line).
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading event: %v (have %q)", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}
