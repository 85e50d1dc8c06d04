#!/bin/sh
# Verify systemd/lineside.service: any warning from systemd-analyze verify fails the check
# (it only warns about unknown keys), and print the offline security exposure (target <= 2.5).
set -eu
unit=systemd/lineside.service
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze missing: apt-get install systemd" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# verify checks that ExecStart exists: point it at this checkout's venv instead of /opt.
sed "s#/opt/lineside/venv/bin/lineside#$(pwd)/.venv/bin/lineside#" "$unit" > "$tmp/lineside.service"
out=$(systemd-analyze verify "$tmp/lineside.service" 2>&1 || true)
if [ -n "$out" ]; then
    echo "systemd-analyze verify $unit:" >&2
    echo "$out" >&2
    exit 1
fi
exposure=$(systemd-analyze security --offline=true "$tmp/lineside.service" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for lineside.service: \([0-9.]*\).*/\1/p')
echo "systemd unit ok; security exposure $exposure (target <= 2.5)"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.5) }' || { echo "exposure above 2.5" >&2; exit 1; }
