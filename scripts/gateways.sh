#!/usr/bin/env bash
# Installs the gateways the enforcer's forward-auth tests run against: nginx
# (with the auth_request module: Debian's nginx-light has it) and caddy
# (forward_auth), both from Debian. Idempotent and quiet when done. The
# packages' own services are kept from starting: the tests run private
# instances on free loopback ports.
set -euo pipefail

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v caddy >/dev/null 2>&1 || [ -x /usr/bin/caddy ] || need_apt+=(caddy)
[ ${#need_apt[@]} -eq 0 ] && exit 0

echo "gateways: installing ${need_apt[*]} (apt)"
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

# Without systemd, the packages' postinst would start nginx on port 80 and
# caddy on its default port. policy-rc.d (exit 101: "action forbidden") is
# the Debian way to keep them down; one that already exists is respected.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
	$sudo_cmd chmod 755 "$policy"
	made_policy=1
fi
cleanup() { [ -n "$made_policy" ] && $sudo_cmd rm -f "$policy"; return 0; }
trap cleanup EXIT

$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { echo "gateways: nginx missing after install" >&2; exit 1; }
command -v caddy >/dev/null 2>&1 || [ -x /usr/bin/caddy ] || { echo "gateways: caddy missing after install" >&2; exit 1; }
