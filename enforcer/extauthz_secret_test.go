package enforcer_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/rampart-io/rampart/enforcer"
)

// TestExtAuthzSecret: with ext_authz.secret_file set, a check that does not
// carry the secret — any local process asking the services directly — is
// refused and recorded, over HTTP and gRPC alike. Before, any process on a
// trusted address recorded allows for requests no gateway had seen.
func TestExtAuthzSecret(t *testing.T) {
	h := newHarness(t, 2*time.Second, extAuthzModes(), func(h *harness, c *enforcer.Config) {
		c.ExtAuthz.SecretFile = filepath.Join(h.dir, "ext_authz.secret")
		if err := os.WriteFile(c.ExtAuthz.SecretFile, []byte(testGatewaySecret), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	tok := "Bearer " + h.token(t)
	httpCheck := func(secret ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/_rampart/ext_authz/mcp", strings.NewReader(toolCall("search", `{}`)))
		req.Header.Set("Authorization", tok)
		for _, s := range secret {
			req.Header.Add(enforcer.HeaderGatewaySecret, s)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for name, secret := range map[string][]string{"none": nil, "wrong": {"guess-guess-guess-guess"}, "twice": {testGatewaySecret, testGatewaySecret}} {
		if status, body := httpCheck(secret...); status != http.StatusForbidden || !strings.Contains(body, "gateway_unauthenticated") {
			t.Errorf("HTTP check, secret %s: %d %s", name, status, body)
		}
	}
	if status, body := httpCheck(testGatewaySecret); status != http.StatusOK {
		t.Errorf("HTTP check with the secret: %d %s", status, body)
	}

	conn, err := grpc.NewClient(h.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	check := func(ctx context.Context, extra ...string) code.Code {
		headers := map[string]string{"authorization": tok}
		for i := 0; i < len(extra); i += 2 {
			headers[extra[i]] = extra[i+1]
		}
		resp, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "tools.test", Path: "/mcp",
				Headers: headers, Body: toolCall("search", `{}`)}}}})
		if err != nil {
			t.Fatal(err)
		}
		return code.Code(resp.GetStatus().GetCode())
	}
	if c := check(context.Background()); c != code.Code_PERMISSION_DENIED {
		t.Errorf("gRPC check without the secret: %v", c)
	}
	// A client header of that name inside the checked request is not the gateway's metadata.
	if c := check(context.Background(), "x-rampart-gateway-secret", testGatewaySecret); c != code.Code_PERMISSION_DENIED {
		t.Errorf("gRPC check with the secret in the client's headers: %v", c)
	}
	if c := check(metadata.AppendToOutgoingContext(context.Background(), "x-rampart-gateway-secret", testGatewaySecret)); c != code.Code_OK {
		t.Errorf("gRPC check with the secret: %v", c)
	}
	if h.hits.Load() != 0 {
		t.Error("a check endpoint forwarded a request")
	}
}
