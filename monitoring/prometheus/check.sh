#!/usr/bin/env sh
# The monitoring files compose mounts, checked by the tools that load them (`make lint`):
# Prometheus's config and rules, the rules' unit tests (alerts_test.yml), Alertmanager's config.
# The config is checked as shipped: its rule_files are relative to its folder, as in the container.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for tool in promtool amtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is missing: install it with 'apt-get install -y prometheus prometheus-alertmanager' (Debian, Ubuntu)." >&2
    exit 1
  fi
done
promtool check config "$here/prometheus.yml"
promtool check rules "$here/alerts.yml"
promtool test rules "$here/alerts_test.yml"
amtool check-config "$here/../alertmanager/alertmanager.yml"
