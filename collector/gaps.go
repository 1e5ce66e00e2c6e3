package collector

import "github.com/rampart-io/rampart/schema/event"

// maxTrackedChains bounds the gap detector's memory; past it, some chain is
// forgotten and re-learned from its next event.
const maxTrackedChains = 10000

type chainID struct{ instance, epoch string }

// gaps flags sequence numbers that a chain skipped as events arrive. Events
// of one chain reach the collector in order (the enforcer publishes, and
// replays its spool, in sequence order), so a jump means events are missing
// right now; `rampart verify` later says whether the enforcer reported them
// unrecorded or they were lost.
type gaps struct {
	last map[chainID]uint64
}

// observe returns how many sequence numbers e's chain skipped before it.
func (g *gaps) observe(e *event.Event) uint64 {
	if e.Epoch == "" {
		return 0
	}
	if g.last == nil {
		g.last = make(map[chainID]uint64)
	}
	id := chainID{e.Instance, e.Epoch}
	prev, known := g.last[id]
	switch {
	case !known:
		if len(g.last) >= maxTrackedChains {
			for k := range g.last {
				delete(g.last, k)
				break
			}
		}
		g.last[id] = e.Seq // possibly joined mid-chain (a restart): nothing to compare with
		return 0
	case e.Seq <= prev:
		return 0 // a redelivery
	default:
		g.last[id] = e.Seq
		return e.Seq - prev - 1
	}
}
