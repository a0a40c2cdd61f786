#!/usr/bin/env bash
# Install the Debian packages the tests use (tor, nginx, the upstream proxies, ...) without
# letting any of their services start: a system tor would contact the public Tor network,
# nginx and sshd would listen on all addresses. The tests start their own instances, on
# 127.0.0.1 only. Used by `make system-deps` and `.ci/run`.
set -euo pipefail
PACKAGES=(make python3-venv tor nginx-light socat microsocks dante-server tinyproxy
          openssh-server openssh-client curl wget)
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no apt-get: install ${PACKAGES[*]} with your package manager" >&2
    exit 0
fi
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
POLICY=/usr/sbin/policy-rc.d  # Debian's hook: exit 101 = "do not start services"
created=
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# webtunnel-pt tools/system-deps.sh, during apt-get install only\nexit 101\n' \
        | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    created=1
fi
trap '[ -z "$created" ] || $SUDO rm -f "$POLICY"' EXIT
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
