// Package chstore is Rampart's ClickHouse access over the native protocol:
// connecting, running migrations, batched inserts and text queries. The
// collector, correlator and `rampart migrate` share it; the enforcer never
// imports it.
package chstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rampart-io/rampart/schema/ddl"
)

// Config locates a ClickHouse server.
type Config struct {
	// Addr is host:port of the native protocol (9000 by default); on a
	// cluster, the replicas of one shard comma-separated, tried in order:
	// the first while it answers, the next when it cannot be reached, so
	// the collector keeps inserting (and the correlator reading) while a
	// replica is down.
	Addr AddrList `yaml:"addr"`
	// Cluster names the ClickHouse cluster (remote_servers) Rampart's
	// tables live on; empty for a single server. With it, the migrator
	// creates every table ON CLUSTER as a Replicated*MergeTree, whose
	// ZooKeeper path comes from the {shard} and {replica} macros, beside a
	// Distributed table <table>_all over it, and every view on every node
	// (deploy/cluster/clickhouse).
	Cluster string `yaml:"cluster"`
	// HTTPAddr is host:port of the HTTP interface, used where RowBinary
	// beats the native protocol: the collector's inserts and reading
	// events back (`rampart verify`). Empty does both over the native
	// protocol. On a cluster, the replicas' HTTP interfaces comma-separated,
	// as Addr lists them: a request that fails, or whose answer is lost, is
	// sent again to the next replica, and the one that answered takes the
	// requests after it.
	HTTPAddr AddrList `yaml:"http_addr"`
	// Database holds Rampart's tables.
	Database string `yaml:"database"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DialTimeout bounds connecting; queries are bounded by their context.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds the wait for each packet of an answer: a server
	// silent for longer is taken for dead. Default 5m; `rampart migrate`
	// raises it, since a migration may backfill a large table in one
	// statement that sends nothing until it is done.
	ReadTimeout time.Duration `yaml:"read_timeout"`
}

// Defaults returns the configuration of a local server.
func Defaults() Config {
	return Config{Addr: "127.0.0.1:9000", Database: "rampart", Username: "default", DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Minute}
}

// Validate checks c.
func (c Config) Validate() error {
	if c.Addr == "" {
		return fmt.Errorf("clickhouse: addr is required")
	}
	if err := validAddrs("addr", c.Addr); err != nil {
		return err
	}
	if c.HTTPAddr != "" {
		if err := validAddrs("http_addr", c.HTTPAddr); err != nil {
			return err
		}
	}
	if c.Cluster != "" {
		if err := ddl.ValidCluster(c.Cluster); err != nil {
			return err
		}
	}
	return ddl.ValidDatabase(c.Database)
}

// Addrs are the addresses in Addr, in order.
func (c Config) Addrs() []string { return splitAddrs(c.Addr) }

// HTTPAddrs are the addresses in HTTPAddr, in order; none when it is empty.
func (c Config) HTTPAddrs() []string {
	if c.HTTPAddr == "" {
		return nil
	}
	return splitAddrs(c.HTTPAddr)
}

// splitAddrs is the one reading of an address list: host:port entries,
// comma-separated, in the order they are tried.
func splitAddrs(list AddrList) []string {
	var out []string
	for _, a := range strings.Split(string(list), ",") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// validAddrs checks every entry of the list under key is host:port.
func validAddrs(key string, list AddrList) error {
	addrs := splitAddrs(list)
	if len(addrs) > maxAddrs {
		return fmt.Errorf("clickhouse: %s lists %d addresses, more than %d", key, len(addrs), maxAddrs)
	}
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if err := validAddr(a); err != nil {
			return fmt.Errorf("clickhouse: %s %q: %w", key, a, err)
		}
		k := strings.ToLower(a)
		if seen[k] {
			return fmt.Errorf("clickhouse: %s names %q twice", key, a)
		}
		seen[k] = true
	}
	return nil
}

// maxAddrs bounds an address list: each entry is a replica tried in turn.
const maxAddrs = 64

// validAddr checks one host:port: a host name or IP literal, and a port
// the dialer would not read as "any" (0) or refuse.
func validAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not in 1-65535", port)
	}
	if host == "" {
		return errors.New("no host")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("host %q is neither an IP address nor a host name", host)
		}
	}
	return nil
}

// Client is a connection pool to one ClickHouse server.
type Client struct {
	conn driver.Conn
	cfg  Config
	http *replicas // the HTTP interfaces, nil when not configured
}

// Open connects to the server and checks it answers.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: cfg.Addrs(),
		// In order: the first address while it answers, the next only when
		// it does not.
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Auth:             clickhouse.Auth{Username: cfg.Username, Password: cfg.Password},
		DialTimeout:      cfg.DialTimeout,
		ReadTimeout:      cfg.ReadTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse: ping %s: %w", cfg.Addr, err)
	}
	return &Client{conn: conn, cfg: cfg, http: newReplicas(cfg)}, nil
}

// WithDatabase returns a client for another database on the same
// connections (closing either closes both).
func (c *Client) WithDatabase(db string) *Client {
	cfg := c.cfg
	cfg.Database = db
	return &Client{conn: c.conn, cfg: cfg, http: c.http}
}

// OpenMigrated is Open followed by Migrate: how every component that
// writes to ClickHouse starts.
func OpenMigrated(ctx context.Context, cfg Config) (*Client, error) {
	c, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Migrate(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// HTTPAddr is the HTTP interface's address, "" when not configured.
func (c *Client) HTTPAddr() string { return string(c.cfg.HTTPAddr) }

// Database is the database Rampart's tables live in.
func (c *Client) Database() string { return c.cfg.Database }

// Close releases the connections.
func (c *Client) Close() error { return c.conn.Close() }

// Migrate applies pending schema migrations to the client's database.
func (c *Client) Migrate(ctx context.Context) ([]int, error) {
	return ddl.MigrateCluster(ctx, c, c.cfg.Database, c.cfg.Cluster, 0)
}

// Cluster is the configured cluster's name, "" for a single server.
func (c *Client) Cluster() string { return c.cfg.Cluster }

// Exec runs a statement that returns no rows.
func (c *Client) Exec(ctx context.Context, query string) error {
	return c.conn.Exec(ctx, query)
}

// Insert writes rows into table (in the client's database) as one block,
// naming the columns. It returns only once the server accepted the block.
func (c *Client) Insert(ctx context.Context, table string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	q := fmt.Sprintf("INSERT INTO %s.%s (%s)", c.cfg.Database, table, strings.Join(columns, ", "))
	b, err := c.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare insert into %s: %w", table, err)
	}
	defer b.Abort()
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			return fmt.Errorf("clickhouse: append to %s: %w", table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert into %s: %w", table, err)
	}
	return nil
}

// Query runs a query and returns every row as text, formatted as
// ClickHouse's own text formats print them, so results compare across engines.
func (c *Client) Query(ctx context.Context, query string) ([][]string, error) {
	rows, err := c.conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, t := range types {
			dest[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]string, len(dest))
		for i, d := range dest {
			row[i] = FormatValue(reflect.ValueOf(d).Elem().Interface())
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// QueryCounted is Query that also returns how many rows the server read to
// answer, from its progress reports: what `make bench-forensic` prints beside
// each query's time.
func (c *Client) QueryCounted(ctx context.Context, query string) ([][]string, uint64, error) {
	var read atomic.Uint64
	ctx = clickhouse.Context(ctx, clickhouse.WithProgress(func(p *clickhouse.Progress) { read.Add(p.Rows) }))
	rows, err := c.Query(ctx, query)
	return rows, read.Load(), err
}

// FormatValue prints a scanned value the way ClickHouse's text formats do.
func FormatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case time.Time:
		return x.UTC().Format(time.DateTime)
	case *time.Time:
		if x == nil {
			return ""
		}
		return x.UTC().Format(time.DateTime)
	case string:
		return x
	case []string:
		return "[" + strings.Join(quoteAll(x), ",") + "]"
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return ""
		}
		return FormatValue(rv.Elem().Interface())
	}
	return fmt.Sprint(v)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	return out
}

var _ ddl.Conn = (*Client)(nil)
