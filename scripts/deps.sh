#!/usr/bin/env bash
# Installs the Debian packages the test suite starts as real services. Idempotent and quick
# when everything is there already.
set -euo pipefail
need=()
[ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q "${need[@]}"
fi
