module github.com/rampart-io/rampart

go 1.26.0

require (
	github.com/rampart-io/rampart/chstore v0.0.0
	github.com/rampart-io/rampart/collector v0.0.0
	github.com/rampart-io/rampart/correlator v0.0.0
	github.com/rampart-io/rampart/enforcer v0.0.0
	github.com/rampart-io/rampart/loadtest v0.0.0
	github.com/rampart-io/rampart/schema v0.0.0
)

replace (
	github.com/rampart-io/rampart/chstore => ./chstore
	github.com/rampart-io/rampart/collector => ./collector
	github.com/rampart-io/rampart/correlator => ./correlator
	github.com/rampart-io/rampart/enforcer => ./enforcer
	github.com/rampart-io/rampart/loadtest => ./loadtest
	github.com/rampart-io/rampart/schema => ./schema
)
