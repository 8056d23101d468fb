#!/usr/bin/env bash
# Publish throughput with metrics on and off: `meshgate serve` (release) with --metrics on|off,
# `meshgate bench publish` over TCP against it, alternating on/off so drift hits both alike.
# Usage: scripts/bench-metrics.sh [ROUNDS] [extra bench flags...]   e.g. scripts/bench-metrics.sh 3 --no-merge
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/meshgate
rounds=${1:-3}; shift || true
fsync=${FSYNC:-none}
duration=${DURATION:-8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A total=([on]=0 [off]=0)
for r in $(seq "$rounds"); do
  for m in on off; do
    rm -rf "$work/data"
    "$bin" serve --http 127.0.0.1:18580 --tcp 127.0.0.1:17580 --data "$work/data" --routes "$work/none" \
      --fsync "$fsync" --metrics "$m" --log-level warning &
    server=$!
    for _ in $(seq 50); do curl -sf http://127.0.0.1:18580/readyz >/dev/null && break; sleep 0.1; done
    rate=$("$bin" bench publish --server tcp://127.0.0.1:17580 --duration "$duration" "$@" 2>/dev/null \
      | sed -n 's/^events acknowledged: \([0-9]*\) in \([0-9.]*\) s.*/\1 \2/p' | awk '{printf "%d", $1 / $2}')
    kill "$server"; wait "$server" 2>/dev/null || true
    echo "round $r metrics $m: $rate events/s"
    total[$m]=$(( ${total[$m]} + rate ))
  done
done
on=$(( ${total[on]} / rounds )); off=$(( ${total[off]} / rounds ))
echo "mean: metrics on $on events/s, off $off events/s, on/off $(awk "BEGIN {printf \"%.3f\", $on / $off}")"
