package enforcer

import "github.com/rampart-io/rampart/enforcer/framing"

// refused answers a request the framing check refused at the connection
// level, before net/http read it.
func (e *Enforcer) refused(r framing.Refusal) []byte {
	return errorBody(Code(r.Code), "", "", nil)
}
