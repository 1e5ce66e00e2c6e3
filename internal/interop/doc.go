// Package interop runs real MCP peers through Rampart: the official Go SDK
// client against the reference server (@modelcontextprotocol/server-everything,
// run with Node), each step directly and through an enforcer, so a change
// that breaks a real client shows here. It holds tests only.
package interop
