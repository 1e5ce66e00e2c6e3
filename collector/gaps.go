package collector

// maxTrackedChains bounds the gap detector's memory; past it, some chain is
// forgotten and re-learned from its next event.
const maxTrackedChains = 10000

type chainID struct{ instance, epoch string }

// position is where a stored event lies on its chain: all the gap check
// keeps of it, so a batch's decoded events are garbage once its rows are
// encoded.
type position struct {
	chain chainID
	seq   uint64
}

// gaps flags sequence numbers that a chain skipped as events arrive. Events
// of one chain reach the collector in order (the enforcer publishes, and
// replays its spool, in sequence order), so a jump means events are missing
// right now; `rampart verify` later says whether the enforcer reported them
// unrecorded or they were lost.
type gaps struct {
	last map[chainID]uint64
}

// observe returns how many sequence numbers p's chain skipped before it.
func (g *gaps) observe(p position) uint64 {
	if p.chain.epoch == "" {
		return 0
	}
	if g.last == nil {
		g.last = make(map[chainID]uint64)
	}
	id := p.chain
	prev, known := g.last[id]
	switch {
	case !known:
		if len(g.last) >= maxTrackedChains {
			for k := range g.last {
				delete(g.last, k)
				break
			}
		}
		g.last[id] = p.seq // possibly joined mid-chain (a restart): nothing to compare with
		return 0
	case p.seq <= prev:
		return 0 // a redelivery
	default:
		g.last[id] = p.seq
		return p.seq - prev - 1
	}
}
