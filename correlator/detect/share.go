package detect

// The shares of a rule's groups: per tenant, and per principal within a
// tenant, each a recency list (least recently used first) so the group
// to evict at a bound is found in constant time.

// Which of a group's links a list threads.
const (
	lruTenant = iota
	lruPrincipal
)

// link is a group's place in one recency list.
type link struct{ prev, next *group }

// lru is a recency list of groups through their links[k].
type lru struct {
	k          int
	n          int
	head, tail *group
}

func (l *lru) pushBack(g *group) {
	ln := &g.links[l.k]
	ln.prev, ln.next = l.tail, nil
	if l.tail != nil {
		l.tail.links[l.k].next = g
	} else {
		l.head = g
	}
	l.tail = g
	l.n++
}

func (l *lru) remove(g *group) {
	ln := &g.links[l.k]
	if ln.prev != nil {
		ln.prev.links[l.k].next = ln.next
	} else {
		l.head = ln.next
	}
	if ln.next != nil {
		ln.next.links[l.k].prev = ln.prev
	} else {
		l.tail = ln.prev
	}
	ln.prev, ln.next = nil, nil
	l.n--
}

func (l *lru) touch(g *group) {
	if l.tail == g {
		return
	}
	l.remove(g)
	l.pushBack(g)
}

// maxSpare bounds the emptied principal lists a rule keeps for reuse:
// principals come and go with their groups, and reusing their lists
// spares an allocation per new one.
const maxSpare = 1024

// tenantShare is one tenant's groups of one rule, and its principals'.
type tenantShare struct {
	lru        lru
	principals map[string]*lru
}

// principal returns p's list, nil when p holds no group.
func (ts *tenantShare) principal(p string) *lru {
	if ts == nil {
		return nil
	}
	return ts.principals[p]
}

// count is how many groups l holds; 0 for nil.
func (l *lru) count() int {
	if l == nil {
		return 0
	}
	return l.n
}

// add counts a new group in its tenant's and principal's shares, as the
// most recently used.
func (s *ruleState) add(g *group) {
	ts := s.tenants[g.tenant]
	if ts == nil {
		ts = &tenantShare{lru: lru{k: lruTenant}, principals: map[string]*lru{}}
		s.tenants[g.tenant] = ts
	}
	ts.lru.pushBack(g)
	p := ts.principals[g.principal]
	if p == nil {
		if n := len(s.spare); n > 0 {
			p, s.spare = s.spare[n-1], s.spare[:n-1]
		} else {
			p = &lru{k: lruPrincipal}
		}
		ts.principals[g.principal] = p
	}
	p.pushBack(g)
}

// remove takes a dropped group out of its shares.
func (s *ruleState) remove(g *group) {
	ts := s.tenants[g.tenant]
	if ts == nil {
		return
	}
	ts.lru.remove(g)
	if p := ts.principals[g.principal]; p != nil {
		if p.remove(g); p.n == 0 {
			delete(ts.principals, g.principal)
			if len(s.spare) < maxSpare {
				s.spare = append(s.spare, p) // empty: head and tail nil
			}
		}
	}
	if ts.lru.n == 0 {
		delete(s.tenants, g.tenant)
	}
}

// touch makes g its tenant's and principal's most recently used group.
func (s *ruleState) touch(g *group) {
	ts := s.tenants[g.tenant]
	ts.lru.touch(g)
	ts.principals[g.principal].touch(g)
}
