package demo

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Probe is one attack the demo makes on its own enforcer, the way an
// outside tester would, and how the boundary answered it.
type Probe struct {
	Name      string
	Status    int
	Code      string // the refusal's stable code
	RequestID string // under which the refusal was recorded
}

// probe is a raw HTTP/1.1 request, sent as written: no client library
// would send most of these.
type probe struct {
	name, raw string
}

// boundaryProbes are requests that must never reach the backend: request
// smuggling, a header block past the limit, a path a Spring backend would
// resolve elsewhere, a forged session of another principal.
func boundaryProbes(token string) []probe {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{}}}`
	auth := "Authorization: Bearer " + token + "\r\n"
	return []probe{
		{"request smuggling (Content-Length and Transfer-Encoding)",
			"POST /mcp HTTP/1.1\r\nHost: demo\r\n" + auth + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"header block past max_header_bytes",
			"POST /mcp HTTP/1.1\r\nHost: demo\r\n" + auth + "X-Pad: " + strings.Repeat("a", 40<<10) + "\r\n\r\n"},
		{"matrix-parameter path (/mcp/..;/admin)",
			"POST /mcp/..;/admin HTTP/1.1\r\nHost: demo\r\n" + auth + "Content-Type: application/json\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n" + body},
	}
}

// sendProbes sends each probe on a connection of its own and reads the
// answer's status and JSON error.
func sendProbes(addr string, probes []probe) ([]Probe, error) {
	out := make([]Probe, 0, len(probes))
	for _, p := range probes {
		got, err := sendProbe(addr, p)
		if err != nil {
			return nil, fmt.Errorf("demo: probe %q: %w", p.name, err)
		}
		out = append(out, got)
	}
	return out, nil
}

func sendProbe(addr string, p probe) (Probe, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return Probe{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(p.raw)); err != nil {
		return Probe{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return Probe{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return Probe{}, fmt.Errorf("answer %d is not the JSON error: %w", resp.StatusCode, err)
	}
	return Probe{Name: p.name, Status: resp.StatusCode, Code: body.Error.Code, RequestID: body.RequestID}, nil
}
