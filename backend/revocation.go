package backend

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RevocationsBucket is the key-value bucket of ended tasks and revoked
// credentials that every enforcer writes and every verifying backend
// watches (schema/stream.Revocations).
const RevocationsBucket = "RAMPART_REVOCATIONS"

// TaskRevocationKey is the key recording that tenant's task ended, each
// part base64url without padding (schema/stream.TaskRevocationKey).
func TaskRevocationKey(tenant, task string) string {
	return "task." + b64(tenant) + "." + b64(task)
}

// JTIRevocationKey is the key recording that credential jti is revoked
// (schema/stream.JTIRevocationKey).
func JTIRevocationKey(jti string) string { return "jti." + b64(jti) }

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// revocationValue is the part of a revocations value the watcher reads:
// until when the record matters (schema/stream.Revocation.Until).
type revocationValue struct {
	Until time.Time `json:"until"`
}

// watcher mirrors the revocations bucket: every key it holds, with the
// time it may be forgotten (zero: never). It is available once the
// bucket's current keys are all read, while NATS is connected, and while
// the watch is confirmed to have delivered the bucket's last revision
// within maxWatchLag: a connection back up does not mean the watch is
// (after a NATS restart it delivers nothing until its consumer is
// recreated, seconds later), and a backend that cannot see new
// revocations does not trust its copy.
type watcher struct {
	js  jetstream.JetStream
	log *slog.Logger
	now func() time.Time

	mu        sync.RWMutex
	keys      map[string]time.Time
	ready     atomic.Bool
	applied   atomic.Uint64 // updates applied, for tests that wait on one
	seen      atomic.Uint64 // highest revision the watch delivered
	confirmed atomic.Int64  // unix nanos when the copy was last known current
	progress  chan struct{} // nudged on every delivery
}

// maxWatchLag is how long the copy may go unconfirmed before it is not
// trusted (and introspection decides): the bound on how long a revocation
// can go unseen while the connection looks healthy.
const maxWatchLag = 500 * time.Millisecond

func newWatcher(js jetstream.JetStream, log *slog.Logger, now func() time.Time) *watcher {
	return &watcher{js: js, log: log, now: now, keys: map[string]time.Time{}, progress: make(chan struct{}, 1)}
}

// available reports whether the copy is complete and kept current.
func (w *watcher) available() bool {
	return w.ready.Load() && w.js.Conn().Status() == nats.CONNECTED &&
		w.now().Sub(time.Unix(0, w.confirmed.Load())) <= maxWatchLag
}

// confirm asks the bucket for its last revision every maxWatchLag/4 and
// marks the copy current at the time of asking once the watch has
// delivered that revision, until ctx ends.
func (w *watcher) confirm(ctx context.Context, kv jetstream.KeyValue) {
	every := maxWatchLag / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		asked := w.now()
		// An answer slower than a tick still confirms as of asking; ticks
		// missed meanwhile are dropped.
		actx, cancel := context.WithTimeout(ctx, maxWatchLag)
		last, err := lastRevision(actx, kv)
		for err == nil && w.seen.Load() < last {
			select {
			case <-w.progress:
			case <-actx.Done():
				err = actx.Err()
			}
		}
		cancel()
		if err == nil {
			w.confirmed.Store(asked.UnixNano())
		}
	}
}

func lastRevision(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, errors.New("backend: bucket status without stream info")
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// advance records that the watch delivered revision rev.
func (w *watcher) advance(rev uint64) {
	for {
		cur := w.seen.Load()
		if rev <= cur || w.seen.CompareAndSwap(cur, rev) {
			break
		}
	}
	select {
	case w.progress <- struct{}{}:
	default:
	}
}

// check returns the code refusing c, "" when neither its task nor its
// jti is revoked.
func (w *watcher) check(c *Credential) string {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if c.TaskID != "" {
		if _, ok := w.keys[TaskRevocationKey(c.Tenant, c.TaskID)]; ok {
			return CodeTaskEnded
		}
	}
	if _, ok := w.keys[JTIRevocationKey(c.JTI)]; ok {
		return CodeCredentialRevoked
	}
	return ""
}

// run binds the bucket (waiting for an enforcer to create it) and follows
// it until ctx ends, watching again whenever a watch ends early.
func (w *watcher) run(ctx context.Context) {
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		if err := w.follow(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("revocations watch ended; retrying", "err", err)
		}
		w.ready.Store(false)
		retry.Reset(time.Second)
	}
}

// sweepEvery is how often keys past their until are forgotten: the
// bucket's own TTL removes them without telling watchers.
const sweepEvery = time.Minute

func (w *watcher) follow(ctx context.Context) error {
	kv, err := w.js.KeyValue(ctx, RevocationsBucket)
	if err != nil {
		return fmt.Errorf("backend: revocations bucket: %w", err)
	}
	last, err := lastRevision(ctx, kv)
	if err != nil {
		return fmt.Errorf("backend: revocations bucket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kw, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("backend: revocations watch: %w", err)
	}
	defer func() { _ = kw.Stop() }()
	confirming := make(chan struct{})
	go func() { defer close(confirming); w.confirm(ctx, kv) }()
	defer func() { cancel(); <-confirming }()
	fresh := map[string]time.Time{} // the keys read before the first nil
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			w.sweep()
		case e, ok := <-kw.Updates():
			if !ok {
				return errors.New("backend: revocations watch closed")
			}
			if e == nil {
				// The current keys are all read: they replace the copy
				// (a key deleted while no watch ran is gone from it).
				if fresh != nil {
					w.mu.Lock()
					w.keys, fresh = fresh, nil
					w.mu.Unlock()
					// Whatever the bucket held when the watch began is
					// read, records expired since included.
					w.advance(last)
					w.confirmed.Store(w.now().UnixNano())
					w.ready.Store(true)
				}
				continue
			}
			w.apply(fresh, e)
		}
	}
}

// apply records one update, into fresh while the initial keys are read.
func (w *watcher) apply(fresh map[string]time.Time, e jetstream.KeyValueEntry) {
	target := fresh
	if target == nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		target = w.keys
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		var v revocationValue
		_ = json.Unmarshal(e.Value(), &v) // a value unread still revokes
		target[e.Key()] = v.Until
	default: // deleted or purged: revoked no more
		delete(target, e.Key())
	}
	w.applied.Add(1)
	w.advance(e.Revision())
}

func (w *watcher) sweep() {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, until := range w.keys {
		if !until.IsZero() && now.After(until) {
			delete(w.keys, k)
		}
	}
}

// introspector asks the enforcer's RFC 7662 endpoint whether a token is
// active, authenticating as the backend's own workload: the endpoint
// refuses callers it cannot identify, and policy decides whom it answers.
type introspector struct {
	url    string
	client *http.Client
	caller *callerToken
}

// maxIntrospectionBytes bounds an introspection answer.
const maxIntrospectionBytes = 64 << 10

// introspectionTimeout bounds one introspection.
const introspectionTimeout = 2 * time.Second

// active reports the endpoint's answer for token. An error is no answer:
// the caller refuses rather than guess. A 401 is retried once with the
// caller's token read again, for a token rotated since it was read.
func (in *introspector) active(ctx context.Context, token string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, introspectionTimeout)
	defer cancel()
	bearer, err := in.caller.get(ctx, false)
	if err != nil {
		return false, err
	}
	active, status, err := in.ask(ctx, token, bearer)
	if status == http.StatusUnauthorized {
		if again, rerr := in.caller.get(ctx, true); rerr == nil && again != bearer {
			active, _, err = in.ask(ctx, token, again)
		}
	}
	return active, err
}

// ask is one introspection call, answering the HTTP status beside the
// answer.
func (in *introspector) ask(ctx context.Context, token, bearer string) (bool, int, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, strings.NewReader(form.Encode()))
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := in.client.Do(req)
	if err != nil {
		return false, 0, fmt.Errorf("backend: introspection: %w", err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxIntrospectionBytes)
	if resp.StatusCode != http.StatusOK {
		var refusal struct {
			Code string `json:"code"`
		}
		_ = json.NewDecoder(body).Decode(&refusal)
		return false, resp.StatusCode, fmt.Errorf("backend: introspection: %s (code %q)", resp.Status, refusal.Code)
	}
	var answer struct {
		Active *bool `json:"active"`
	}
	if err := json.NewDecoder(body).Decode(&answer); err != nil || answer.Active == nil {
		return false, resp.StatusCode, fmt.Errorf("backend: introspection: no active member in the answer")
	}
	return *answer.Active, resp.StatusCode, nil
}

// TokenSource returns the bearer token the backend presents to the
// introspection endpoint. It is called for every introspection, and again
// after a 401, so it may cache and must refresh on its own schedule.
type TokenSource func(ctx context.Context) (string, error)

// maxCallerTokenBytes bounds the token file: a JWT of the identity
// stack's 8 KiB with room to spare.
const maxCallerTokenBytes = 16 << 10

// callerToken is the backend's own credential for introspection: a
// TokenSource, or a file (a Kubernetes projected service account token,
// a SPIFFE JWT-SVID written by a helper) read on first use and again
// after a 401, since the file is rotated in place before the token
// expires.
type callerToken struct {
	source TokenSource
	file   string

	mu     sync.Mutex
	cached string
}

// get returns the token; reread drops what was read from the file.
func (c *callerToken) get(ctx context.Context, reread bool) (string, error) {
	if c.source != nil {
		tok, err := c.source(ctx)
		if err != nil || tok == "" {
			return "", fmt.Errorf("backend: introspection credential: %v", cmp.Or(err, errors.New("empty token")))
		}
		return tok, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != "" && !reread {
		return c.cached, nil
	}
	tok, err := readTokenFile(c.file)
	if err != nil {
		return "", err
	}
	c.cached = tok
	return tok, nil
}

func readTokenFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("backend: introspection token file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCallerTokenBytes+1))
	switch tok := strings.TrimSpace(string(b)); {
	case err != nil:
		return "", fmt.Errorf("backend: introspection token file: %w", err)
	case len(b) > maxCallerTokenBytes:
		return "", fmt.Errorf("backend: introspection token file %s: over %d bytes", name, maxCallerTokenBytes)
	case tok == "" || strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("backend: introspection token file %s: want one token", name)
	default:
		return tok, nil
	}
}
