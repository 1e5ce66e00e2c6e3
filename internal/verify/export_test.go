package verify

// SetScanRange makes chains be read n seqs a query until the test ends.
func SetScanRange(n uint64) (restore func()) {
	old := scanRange
	scanRange = n
	return func() { scanRange = old }
}

// SetMaxSegment bounds a checkpoint-less segment at n links until the test ends.
func SetMaxSegment(n int) (restore func()) {
	old := maxSegment
	maxSegment = n
	return func() { maxSegment = old }
}
