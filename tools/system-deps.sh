#!/usr/bin/env bash
# Install the Debian packages the tests use (tor, nginx, the upstream proxies, ...) without
# letting any of their services start during the install: a system tor would contact the
# public Tor network, nginx and sshd would listen on all addresses. The tests start their own
# instances, on 127.0.0.1 only. With systemd the units stay enabled for the next boot; the
# script names them at the end. firefox-esr is the real browser of tests/e2e/test_e2e_browser.py
# (headless, through `webtunnel-pt socks`). Used by `make system-deps` and `.ci/run`.
set -euo pipefail
PACKAGES=(make python3-venv tor nginx-light socat microsocks dante-server tinyproxy
          openssh-server openssh-client curl wget firefox-esr)
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no apt-get: install ${PACKAGES[*]} with your package manager" >&2
    exit 0
fi
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
POLICY=/usr/sbin/policy-rc.d  # Debian's hook: exit 101 = "do not start services"
created=
trap '[ -z "$created" ] || $SUDO rm -f "$POLICY"' EXIT
if [ ! -e "$POLICY" ]; then
    created=1
    printf '#!/bin/sh\n# webtunnel-pt tools/system-deps.sh, during apt-get install only\nexit 101\n' \
        | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
if [ -d /run/systemd/system ]; then
    enabled=$(systemctl is-enabled tor nginx ssh danted tinyproxy 2>/dev/null \
        | paste -sd' ' - || true)
    echo "note: with systemd these services are enabled for the next boot ($enabled);" \
        "the tests do not need them: systemctl disable tor nginx ssh danted tinyproxy" >&2
fi
