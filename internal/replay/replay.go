// Package replay backtests detection rules on stored history: it reads the
// events of a time range back from ClickHouse in the order the stream
// carried them (chstore.Replay) and runs a rule set over them as the
// correlator would (detect.Engine), listing the alerts they would have
// raised. It publishes nothing. `rampart detect replay` prints its result.
package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-io/rampart/chstore"
	"github.com/rampart-io/rampart/correlator"
	"github.com/rampart-io/rampart/correlator/detect"
	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/schema/event"
)

// Options select the history and the rules.
type Options struct {
	// Range is the stored history: events in [From, To), of one tenant
	// when Tenant is set. Windows open at From: a finding whose first
	// evidence lies before it is not seen.
	Range chstore.Range
	// Rules are run; required (detect.Shipped for the built-in pack).
	Rules *detect.RuleSet
	// Engine bounds the engine, as the correlator's detect settings do.
	Engine detect.Options
}

// Result is what a replay read and found.
type Result struct {
	Events  int           `json:"events"`  // events read back
	Skipped int           `json:"skipped"` // of them, not rule input (a correlator's own records)
	Alerts  int           `json:"alerts"`  // alerts the rules raised
	Took    time.Duration `json:"took_ns"`
}

// Run replays o.Range from ch through o.Rules and gives each alert, in
// the order the engine raised it, to visit: alert events exactly as a
// correlator would publish them (ids derived from the finding, so an
// alert the live correlator raised has the same id). After the last event
// the engine's clock moves to o.Range.To, so windows that lapsed inside
// the range (absence, at most N) fire too. Rules on the agent inventory
// (agent_*, inventory_loaded) read the agent columns the collector stored
// with each event.
func Run(ctx context.Context, ch *chstore.Client, o Options, visit func(alert *event.Event) error) (Result, error) {
	var res Result
	if o.Rules == nil {
		return res, errors.New("replay: no rules")
	}
	if err := o.Range.Validate(); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	start := time.Now()
	eng := detect.NewEngine(o.Rules, o.Engine)
	defer eng.Close()
	raised := func(alerts []*event.Event) error {
		for _, a := range alerts {
			res.Alerts++
			if err := visit(a); err != nil {
				return err
			}
		}
		return nil
	}
	err := ch.Replay(ctx, o.Range, func(row *ddl.Row) error {
		res.Events++
		if !input(row.Event) {
			res.Skipped++
			return nil
		}
		// The agent as the collector stored it, not as today's
		// inventory says: the rules see what the live correlator saw.
		return raised(eng.ObserveAgent(row.Event, row.Agent))
	})
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	if err := raised(eng.Advance(o.Range.To)); err != nil {
		return res, err
	}
	res.Took = time.Since(start)
	return res, nil
}

// input reports whether the engine is given e: as the correlator decides
// for its engine, never a correlator's own records (alerts, checkpoints,
// rule reloads), so a backtest judges what agents and enforcers did, not
// what the live correlator said of it.
func input(e *event.Event) bool {
	return e.Kind != event.KindAlert && !correlator.IsCorrelatorInstance(e.Instance)
}
