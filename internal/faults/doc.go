// Package faults holds Rampart's fault-injection suite (its tests): real
// NATS JetStream, a real ClickHouse server, the enforcer, the collector and
// a tool backend on loopback, under steady load, while the suite kills and
// restarts parts of the pipeline. After each fault it reconciles the
// backend's own log of requests, the client's answers and ClickHouse.
//
// RAMPART_SOAK=1 lengthens the load and repeats the faults.
package faults
