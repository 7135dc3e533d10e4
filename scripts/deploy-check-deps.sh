#!/usr/bin/env bash
# Install the tools tests/deploy runs for real: docker-compose (parses compose files
# without a Docker engine), prometheus and promtool; and the real Alertmanager and amtool
# that tests/connectors/test_notify_alertmanager.py pushes alerts to. Idempotent: when every tool is
# already there it returns in milliseconds without touching apt.
set -euo pipefail

need=()
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need+=(prometheus)
{ command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; } ||
    need+=(prometheus-alertmanager)
# The notifier console's browser test (tests/stream/test_notify_console.py) drives these.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
else
    sudo=
fi
echo "deploy-check-deps: installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a system Prometheus where systemd runs; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $sudo systemctl stop prometheus || true
fi
if command -v systemctl >/dev/null 2>&1 &&
    systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
    $sudo systemctl stop prometheus-alertmanager || true
fi
