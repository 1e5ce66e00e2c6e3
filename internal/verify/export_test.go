package verify

// SetScanRange makes chains be read n seqs a query until the test ends.
func SetScanRange(n uint64) (restore func()) {
	old := scanRange
	scanRange = n
	return func() { scanRange = old }
}
