#!/usr/bin/env bash
# Installs the Debian packages the test suite starts as real services, and the browser the
# console's test drives. Idempotent and quick when everything is there already.
set -euo pipefail
need=()
[ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# The console's browser test drives Debian's Chromium headless (chromedp); Inter is the
# console's first font, for screenshots that look as they do on a desktop.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/fonts/opentype/inter ] || [ -d /usr/share/fonts/truetype/inter ] || need+=(fonts-inter)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q "${need[@]}"
fi
