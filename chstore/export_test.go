package chstore

// ReplayQuery is the query Replay runs, for tests on engines Replay does
// not speak to (chDB).
var ReplayQuery = replayQuery
