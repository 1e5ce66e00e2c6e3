package main

import (
	"flag"
	"os"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/component/configfile"
	"github.com/rampart-io/rampart/schema/stream"
)

// Environment variables for the overrides every component shares. Flags
// win over them, and they win over the config file.
const (
	envNATSURL  = "RAMPART_NATS_URL"
	envCHAddr   = "RAMPART_CLICKHOUSE_ADDR"
	envDatabase = "RAMPART_CLICKHOUSE_DATABASE"
	envCHHTTP   = "RAMPART_CLICKHOUSE_HTTP_ADDR"
)

// overrides are the common settings a flag or environment variable can set.
type overrides struct {
	config   string
	natsURL  string
	chAddr   string
	chHTTP   string
	database string
}

// The common flags a verb can take; each verb registers the ones it reads,
// so a flag it would ignore is an error ("flag provided but not defined").
const (
	withConfig         = 1 << iota // -config
	withNATS                       // -nats
	withClickHouse                 // -clickhouse, -database
	withClickHouseHTTP             // -clickhouse-http: for verbs that insert or read events over HTTP
)

func (o *overrides) register(fs *flag.FlagSet, which int) {
	if which&withConfig != 0 {
		fs.StringVar(&o.config, "config", "", "YAML configuration file (unknown keys are an error)")
	}
	if which&withNATS != 0 {
		fs.StringVar(&o.natsURL, "nats", os.Getenv(envNATSURL), "NATS URL, or a cluster's seed URLs comma-separated (env "+envNATSURL+")")
	}
	if which&withClickHouse != 0 {
		fs.StringVar(&o.chAddr, "clickhouse", os.Getenv(envCHAddr), "ClickHouse native address host:port (env "+envCHAddr+")")
		fs.StringVar(&o.database, "database", os.Getenv(envDatabase), "ClickHouse database (env "+envDatabase+")")
	}
	if which&withClickHouseHTTP != 0 {
		fs.StringVar(&o.chHTTP, "clickhouse-http", os.Getenv(envCHHTTP), "ClickHouse HTTP address host:port, or a cluster's replicas comma-separated: inserts and reads of events over RowBinary (env "+envCHHTTP+")")
	}
}

// apply sets *dst to v when v is given.
func apply[S ~string](dst *S, v string) {
	if v != "" {
		*dst = S(v)
	}
}

type errRequired string

func (e errRequired) Error() string { return string(e) + " is required" }

// consumerConfig parses flags for a component that reads the events stream
// and writes ClickHouse into cfg, which holds the defaults: then the file,
// then env and flags. at returns the fields the common overrides set;
// extra adds overrides only some consumers use (withClickHouseHTTP).
func consumerConfig[T interface{ Validate() error }](name string, args []string, extra int, cfg *T, at func(*T) (*stream.Source, *chstore.Config)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var o overrides
	o.register(fs, withConfig|withNATS|withClickHouse|extra)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := configfile.Load(o.config, cfg); err != nil {
		return err
	}
	src, ch := at(cfg)
	apply(&src.NATSURL, o.natsURL)
	apply(&ch.Addr, o.chAddr)
	apply(&ch.HTTPAddr, o.chHTTP)
	apply(&ch.Database, o.database)
	return (*cfg).Validate()
}
