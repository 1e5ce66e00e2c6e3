package correlator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/rampart-io/rampart/correlator/detect"
)

// rules is the rule set a correlator runs (the shipped pack, the
// operator's directory, or both) and its reloading.
type rules struct {
	cfg    DetectConfig
	engine *detect.Engine
	set    *detect.RuleSet // running now
	hash   string          // its hash
}

// newRules loads the configured rule set and builds its engine.
func newRules(cfg DetectConfig, log *slog.Logger) (*rules, error) {
	var dir *detect.RuleSet
	if cfg.RulesDir != "" {
		var err error
		if dir, err = detect.LoadDir(cfg.RulesDir); err != nil {
			return nil, fmt.Errorf("correlator: rules: %w", err)
		}
	}
	r := &rules{cfg: cfg}
	rs, err := r.merge(dir)
	if err != nil {
		return nil, err
	}
	r.set, r.hash = rs, rs.Hash()
	r.engine = detect.NewEngine(rs, detect.Options{MaxGroupsPerRule: cfg.MaxGroupsPerRule, MaxEvidence: cfg.MaxEvidence,
		Meter: otel.Meter("github.com/rampart-io/rampart/correlator/detect"), Log: log})
	r.warnBeyondHorizon(rs, log)
	return r, nil
}

// merge is the set to run with dir as the operator's rules.
func (r *rules) merge(dir *detect.RuleSet) (*detect.RuleSet, error) {
	var sets []*detect.RuleSet
	if r.cfg.Shipped {
		sets = append(sets, detect.Shipped())
	}
	if dir != nil {
		sets = append(sets, dir)
	}
	rs, err := detect.Merge(sets...)
	if err != nil {
		return nil, fmt.Errorf("correlator: rules: %w", err)
	}
	return rs, nil
}

// source names where the rules come from, for the reload events.
func (r *rules) source() string {
	switch {
	case r.cfg.Shipped && r.cfg.RulesDir != "":
		return "the shipped pack and " + r.cfg.RulesDir
	case r.cfg.Shipped:
		return "the shipped pack"
	}
	return r.cfg.RulesDir
}

// warnBeyondHorizon names the rules whose window the recovery horizon
// does not cover: after a restart their groups come back partial.
func (r *rules) warnBeyondHorizon(rs *detect.RuleSet, log *slog.Logger) {
	for _, rule := range rs.Rules() {
		if rule.Window > r.cfg.Recovery.Horizon {
			log.Warn("rule window longer than the recovery horizon: after a restart its groups lack their oldest events",
				"rule", rule.ID, "window", rule.Window, "horizon", r.cfg.Recovery.Horizon)
		}
	}
}

// watch reloads the rules directory until ctx ends: a changed set is
// swapped in (rules that did not change keep their state) and recorded,
// a set that fails to load is recorded as such and the last good set
// keeps running.
func (d *detection) watch(ctx context.Context, r *rules, interval time.Duration) {
	detect.Watch(ctx, r.cfg.RulesDir, interval, func(dir *detect.RuleSet, err error) {
		var rs *detect.RuleSet
		if err == nil {
			rs, err = r.merge(dir)
		}
		if err != nil {
			d.rulesLoaded(ctx, r.hash, r.source(), err)
			return
		}
		if rs.Hash() == r.hash {
			return // the first poll, or a change that changed nothing
		}
		d.mu.Lock()
		r.engine.Swap(rs)
		if d.lookback != nil {
			d.lookback.rules, _ = longLookbacks(rs, r.cfg.Recovery.Horizon)
		}
		r.set, r.hash = rs, rs.Hash()
		d.mu.Unlock()
		r.warnBeyondHorizon(rs, d.log)
		d.rulesLoaded(ctx, r.hash, r.source(), nil)
	})
}
