package policy

import "context"

// Explanation is a decision with the evaluation that led to it, for
// `rampart policy eval` and for debugging a rule.
type Explanation struct {
	Decision Decision `json:"decision"`
	// Policy is the id of the tenant's policy that was evaluated, File the
	// bundle file it came from; both "" when there was none.
	Policy string `json:"policy"`
	File   string `json:"file,omitempty"`
	// Default reports that the "*" policy decided because the tenant has
	// no policy of its own.
	Default bool `json:"default,omitempty"`
	// Rules lists every rule tried, in order, up to the deciding one.
	Rules []RuleTrace `json:"rules"`
}

// Explain decides on in as Decide does, recording how each rule fared.
// It is a dry run: budgets are reported but not charged.
func Explain(ctx context.Context, p *Policy, in *Input) Explanation {
	var x Explanation
	if tp := p.policyFor(in.Tenant); tp != nil {
		x.Policy, x.File = tp.id, tp.file
		_, own := p.tenants[in.Tenant]
		x.Default = !own
	}
	x.Rules = []RuleTrace{}
	x.Decision = p.decide(ctx, in, nil, &x.Rules)
	return x
}
