//lint:file-ignore SA1019 sampling, roots and logging are deprecated as of protocol revision 2026-07-28 but still in use: the suite exercises them.

package interop

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rampart-io/rampart/schema/event"
	"github.com/rampart-io/rampart/testkit/natstest"
)

// goServer is the Go SDK's own streamable HTTP server with a tool that, to
// answer, reports progress and asks the client for a completion
// (sampling), for the user's input (elicitation) and for its roots; a tool
// policy denies; a prompt and a resource.
func goServer(t *testing.T) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "go-peer", Version: "v1"}, nil)
	type none struct{}
	mcp.AddTool(s, &mcp.Tool{Name: "agent-task", Description: "asks the client three things"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
			ss := req.Session
			if tok := req.Params.GetProgressToken(); tok != nil {
				for i := 1; i <= 3; i++ {
					if err := ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: 3}); err != nil {
						return nil, nil, err
					}
				}
			}
			sampled, err := ss.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 5,
				Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "plan"}}}})
			if err != nil {
				return nil, nil, fmt.Errorf("sampling: %w", err)
			}
			elicited, err := ss.Elicit(ctx, &mcp.ElicitParams{Message: "confirm?",
				RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"ok": map[string]any{"type": "boolean"}}}})
			if err != nil {
				return nil, nil, fmt.Errorf("elicitation: %w", err)
			}
			roots, err := ss.ListRoots(ctx, nil)
			if err != nil {
				return nil, nil, fmt.Errorf("roots: %w", err)
			}
			text := fmt.Sprintf("sampled %q, elicited %s %v, %d roots (%s)", sampled.Content.(*mcp.TextContent).Text,
				elicited.Action, elicited.Content["ok"], len(roots.Roots), roots.Roots[0].URI)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "delete-all"}, func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "brief"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "be brief"}}}}, nil
	})
	s.AddResource(&mcp.Resource{URI: "mem://notes", Name: "notes"}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "notes"}}}, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

// fullClient answers everything a server may ask of it, and counts the
// progress it is told of.
func fullClient(ctx context.Context, t *testing.T, endpoint, token string, progress *atomic.Int32) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "rampart-interop", Version: "v1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Content: &mcp.TextContent{Text: "a plan"}, Model: "interop", Role: "assistant"}, nil
		},
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}, nil
		},
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { progress.Add(1) },
	})
	client.AddRoots(&mcp.Root{URI: "file:///work", Name: "work"})
	tr := &mcp.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1}
	if token != "" {
		tr.HTTPClient = &http.Client{Transport: bearer{token}}
	}
	cs, err := client.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	return cs
}

// TestGoSDKClientAgainstGoSDKServer: the Go SDK on both sides, the server
// asking the client for sampling, elicitation and roots in the middle of a
// tool call and reporting progress: the same answers directly and through
// Rampart, the denied tool a JSON-RPC error, each server request recorded
// and each of the client's answers allowed as solicited.
func TestGoSDKClientAgainstGoSDKServer(t *testing.T) {
	upstream := goServer(t)
	ns := natstest.Run(t)
	endpoint, token := rampart(t, ns.URL(), upstream)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var directProgress, throughProgress atomic.Int32
	direct := fullClient(ctx, t, upstream, "", &directProgress)
	defer direct.Close()
	through := fullClient(ctx, t, endpoint, token, &throughProgress)

	task := func(cs *mcp.ClientSession) (string, error) {
		params := &mcp.CallToolParams{Name: "agent-task", Arguments: map[string]any{}}
		params.SetProgressToken("p-1")
		r, err := cs.CallTool(ctx, params)
		if err != nil {
			return "", err
		}
		return r.Content[0].(*mcp.TextContent).Text, nil
	}
	want, err := task(direct)
	if err != nil {
		t.Fatal(err)
	}
	got, err := task(through)
	if err != nil || got != want {
		t.Fatalf("agent-task through Rampart %q, %v; directly %q", got, err, want)
	}
	if d, r := directProgress.Load(), throughProgress.Load(); d != 3 || r != 3 {
		t.Errorf("progress notifications: %d directly, %d through Rampart", d, r)
	}
	for name, call := range map[string]func(cs *mcp.ClientSession) (string, error){
		"prompts/get": func(cs *mcp.ClientSession) (string, error) {
			r, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "brief"})
			if err != nil {
				return "", err
			}
			return r.Messages[0].Content.(*mcp.TextContent).Text, nil
		},
		"resources/read": func(cs *mcp.ClientSession) (string, error) {
			r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "mem://notes"})
			if err != nil {
				return "", err
			}
			return r.Contents[0].Text, nil
		},
	} {
		w, werr := call(direct)
		g, gerr := call(through)
		if werr != nil || gerr != nil || w != g {
			t.Errorf("%s: through Rampart %q, %v; directly %q, %v", name, g, gerr, w, werr)
		}
	}
	var rpcErr *jsonrpc.Error
	if _, err := through.CallTool(ctx, &mcp.CallToolParams{Name: "delete-all", Arguments: map[string]any{}}); !errors.As(err, &rpcErr) || rpcErr.Code != -32001 {
		t.Errorf("delete-all through Rampart: %v, want a JSON-RPC refusal", err)
	}
	if err := through.Ping(ctx, nil); err != nil {
		t.Errorf("ping after the denial: %v", err)
	}
	through.Close()

	events := recorded(ctx, t, ns.URL())
	asked := map[string]bool{}
	for _, e := range events {
		if e.Kind == event.KindServerRequest {
			asked[e.Request.RPCMethod] = true
		}
	}
	for _, m := range []string{"sampling/createMessage", "elicitation/create", "roots/list"} {
		if !asked[m] {
			t.Errorf("the server's %s was not recorded (recorded: %v)", m, asked)
		}
	}
	answers := 0
	for _, e := range events {
		if e.Kind == event.KindDecision && e.Request.RPCKind == "response" {
			if e.Decision.Effect != event.EffectAllow {
				t.Errorf("the client's answer refused: %+v", e.Decision)
			}
			answers++
		}
	}
	if answers != 3 {
		t.Errorf("%d client answers recorded, want 3", answers)
	}
	if !hasDecision(events, func(r *event.Request, d *event.Decision) bool {
		return r.Tool == "delete-all" && d.Effect == event.EffectDeny && strings.HasPrefix(d.RuleID, "deny-")
	}) {
		t.Error("no denial of delete-all recorded")
	}
}
