package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// maxJWKSBytes bounds a fetched key set.
const maxJWKSBytes = 1 << 20

// errKeysUnavailable: the set could not be fetched and holds no key for
// the kid asked.
var errKeysUnavailable = errors.New("backend: key set unavailable")

// keySet is the fleet's JWKS, fetched on first use, again once it is
// older than MaxAge, and early when a token names a kid it lacks, at most
// once per MinRefresh. Fetches are shared: concurrent callers wait on one.
type keySet struct {
	url    string
	cfg    KeysConfig
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	keys      map[string]jwk.Key
	fetchedAt time.Time // of the last good fetch
	triedAt   time.Time // of the last attempt, good or not
	fetching  chan struct{}
	lastErr   error
}

func newKeySet(url string, cfg KeysConfig, client *http.Client, now func() time.Time) *keySet {
	return &keySet{url: url, cfg: cfg, client: client, now: now}
}

// key returns the key named kid, nil when the set has none. An unknown
// kid, or a set older than MaxAge, fetches the set again unless a fetch
// was tried within MinRefresh; a fetch under way is waited for.
func (s *keySet) key(ctx context.Context, kid string) (jwk.Key, error) {
	s.mu.Lock()
	_, ok := s.keys[kid]
	now := s.now()
	stale := s.keys == nil || now.Sub(s.fetchedAt) > s.cfg.MaxAge
	mayFetch := s.triedAt.IsZero() || now.Sub(s.triedAt) >= s.cfg.MinRefresh
	switch {
	case ok && !stale, s.fetching == nil && !mayFetch:
		defer s.mu.Unlock()
		return s.found(kid)
	case s.fetching != nil:
		wait := s.fetching
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.found(kid)
	}
	done := make(chan struct{})
	s.fetching, s.triedAt = done, now
	s.mu.Unlock()

	keys, err := s.fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.keys, s.fetchedAt = keys, s.now()
	}
	s.lastErr = err
	s.fetching = nil
	close(done)
	return s.found(kid)
}

// found looks kid up in the set as it is; s.mu is held. A stale set
// still names its keys: a failed refresh does not revoke them.
func (s *keySet) found(kid string) (jwk.Key, error) {
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	if s.keys == nil {
		return nil, fmt.Errorf("%w: %v", errKeysUnavailable, s.lastErr)
	}
	return nil, nil
}

// fetch reads the set. Keys without a kid cannot be named by a token and
// are left out.
func (s *keySet) fetch(ctx context.Context) (map[string]jwk.Key, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("backend: jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("backend: jwks: %s answered %s", s.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("backend: jwks: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("backend: jwks: larger than %d bytes", maxJWKSBytes)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("backend: jwks: %w", err)
	}
	keys := make(map[string]jwk.Key, set.Len())
	for i := range set.Len() {
		k, _ := set.Key(i)
		if kid := k.KeyID(); kid != "" {
			keys[kid] = k
		}
	}
	return keys, nil
}
