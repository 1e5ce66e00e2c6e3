#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian machine:
# clickhouse-server (18.16, Debian's) for both; for the tests also
# prometheus (Debian's, which scrapes a running Rampart), Chromium (Debian's,
# headless, to render investigation reports), zookeeper (Debian's, which the
# ClickHouse cluster tests' replicas coordinate through), systemd-analyze (Debian's
# systemd, which checks the units in deploy/single-node), libchdb.so
# (current ClickHouse as an embedded engine, from npm) under .cache/chdb, the
# reference MCP server (npm) under .cache/mcp, and the nginx and Caddy
# gateways (scripts/gateways.sh). Idempotent and quiet
# when done. Usage: deps.sh [demo|test] (default test).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-test}

CHDB_VERSION=26.5.3
CHDB_DIR=.cache/chdb
CHDB_LIB="$CHDB_DIR/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"
# The reference MCP server the interop suite drives through the enforcer.
MCP_VERSION=2026.8.31
MCP_DIR=.cache/mcp
MCP_SERVER="$MCP_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

need_apt=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || need_apt+=(clickhouse-server)
if [ "$what" = test ]; then
	command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
	command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
	# The package holds the server alone; zookeeperd would also start one.
	[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
	command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "deps: installing ${need_apt[*]} (apt)"
	sudo_cmd=""
	[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	# The package's own service stays down: Rampart starts private servers.
	DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
	# Nor Prometheus's: the tests start their own, on free ports.
	if [[ " ${need_apt[*]} " == *" prometheus "* ]]; then
		$sudo_cmd service prometheus stop >/dev/null 2>&1 || true
	fi
fi

[ "$what" = demo ] && exit 0

scripts/gateways.sh

if [ ! -f "$CHDB_LIB" ]; then
	echo "deps: installing @chdb/lib-linux-x64-gnu@$CHDB_VERSION (npm)"
	mkdir -p "$CHDB_DIR"
	npm install --silent --no-save --no-audit --no-fund --prefix "$CHDB_DIR" "@chdb/lib-linux-x64-gnu@$CHDB_VERSION" >/dev/null
fi
test -f "$CHDB_LIB" || { echo "deps: $CHDB_LIB missing after install" >&2; exit 1; }

if ! grep -qs "\"version\": \"$MCP_VERSION\"" "$MCP_DIR/node_modules/@modelcontextprotocol/server-everything/package.json"; then
	echo "deps: installing @modelcontextprotocol/server-everything@$MCP_VERSION (npm)"
	mkdir -p "$MCP_DIR"
	npm install --silent --no-save --no-audit --no-fund --prefix "$MCP_DIR" "@modelcontextprotocol/server-everything@$MCP_VERSION" >/dev/null
fi
test -f "$MCP_SERVER" || { echo "deps: $MCP_SERVER missing after install" >&2; exit 1; }
