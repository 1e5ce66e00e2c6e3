package stream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// URLs is where a component finds NATS: one server, or the seed servers of
// a cluster. In YAML it is either one string, comma-separated as nats.go
// takes it ("nats://n1:4222,nats://n2:4222"), or a list of URLs; either way
// it is held in the comma-separated form nats.Connect reads. A client
// given seeds learns the rest of the cluster from the server it reaches.
type URLs string

// UnmarshalYAML accepts a string or a list of strings. (This is the
// decoder-agnostic form of yaml's Unmarshaler, so the schema module needs
// no YAML dependency.)
func (u *URLs) UnmarshalYAML(unmarshal func(any) error) error {
	var list []string
	if err := unmarshal(&list); err == nil {
		for _, s := range list {
			if strings.Contains(s, ",") {
				return fmt.Errorf("nats url %q: one URL per list entry", s)
			}
		}
		*u = URLs(strings.Join(list, ","))
		return nil
	}
	var s string
	if err := unmarshal(&s); err != nil {
		return errors.New("nats url: want a URL, comma-separated URLs or a list of URLs")
	}
	*u = URLs(s)
	return nil
}

// List is each URL, trimmed.
func (u URLs) List() []string {
	var out []string
	for _, s := range strings.Split(string(u), ",") {
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// Validate reports an empty list, an empty entry or one that is not a
// NATS URL (host:port alone is accepted, as nats.go accepts it).
func (u URLs) Validate() error {
	if strings.TrimSpace(string(u)) == "" {
		return errors.New("nats url is required")
	}
	for _, s := range u.List() {
		if s == "" {
			return fmt.Errorf("nats url %q: an empty entry", string(u))
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		p, err := url.Parse(s)
		switch {
		case err != nil:
			return fmt.Errorf("nats url %q: %w", s, err)
		case p.Scheme != "nats" && p.Scheme != "tls" && p.Scheme != "ws" && p.Scheme != "wss":
			return fmt.Errorf("nats url %q: scheme %q is not nats, tls, ws or wss", s, p.Scheme)
		case p.Hostname() == "":
			return fmt.Errorf("nats url %q: no host", s)
		}
	}
	return nil
}

// Reconnection: every server of the list is tried in turn; once all have
// failed, the client waits ReconnectDelay(attempts) before the next round,
// forever. A dead server is noticed within PingInterval × (MaxPingsOut+1)
// even when its socket never errors (a partition drops packets silently).
const (
	reconnectFirst = 100 * time.Millisecond
	reconnectMax   = 2 * time.Second
	PingInterval   = 2 * time.Second
	MaxPingsOut    = 2
)

// ReconnectDelay is the wait before the next round of reconnect attempts:
// doubling from 100 ms to at most 2 s, with up to a quarter of jitter so a
// fleet that lost the same server does not come back in step.
func ReconnectDelay(attempts int) time.Duration {
	d := reconnectMax
	if attempts < 5 {
		d = min(reconnectFirst<<attempts, reconnectMax)
	}
	return d + rand.N(d/4+1)
}

// ConnectOptions are the options every Rampart component connects with:
// its name, reconnecting forever with ReconnectDelay's backoff, and pings
// frequent enough to leave a partitioned server within seconds.
func ConnectOptions(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(ReconnectDelay),
		nats.PingInterval(PingInterval),
		nats.MaxPingsOutstanding(MaxPingsOut),
	}
}
