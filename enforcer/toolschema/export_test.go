package toolschema

// PinnedHash is the hash of the schema calls to tool are checked against,
// and pins the number of tools pinned, for tests.
func PinnedHash(r *Registry, tool string) (hash string, pins int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.tools[tool]; e != nil {
		hash = e.schema.hash
	}
	return hash, len(r.tools)
}
