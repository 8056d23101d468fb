#!/usr/bin/env bash
# Three sites in a ring A -> B -> C -> A, all forwarding orders/# under the same name.
# One event published on each site reaches every site exactly once; the hop lists stop it
# where it started (counted as "loops" in GET /v1/connectors).
set -euo pipefail
BIN=${MESHGATE:-.build/release/meshgate}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A TCP HTTP
for s in a b c; do TCP[$s]=$(port); HTTP[$s]=$(port); mkdir -p "$WORK/$s/routes"; done
next() { case $1 in a) echo b;; b) echo c;; c) echo a;; esac; }
for s in a b c; do
  n=$(next $s)
  cat > "$WORK/$s/routes/ring.yaml" <<YAML
version: 1
connectors:
  site-$n: {type: meshgate, url: "tcp://127.0.0.1:${TCP[$n]}"}
routes:
  - name: ring
    from: "orders/#"
    to: [{connector: site-$n, retry: {backoff: 100ms, max_backoff: 2s}}]
YAML
  "$BIN" serve --node site-$s --data "$WORK/$s/data" --routes "$WORK/$s/routes" \
    --http 127.0.0.1:${HTTP[$s]} --tcp 127.0.0.1:${TCP[$s]} 2>"$WORK/$s.log" &
done
sleep 2
for s in a b c; do "$BIN" publish --server tcp://127.0.0.1:${TCP[$s]} orders/new "from site-$s"; done
sleep 2
for s in a b c; do
  echo "--- site-$s holds:"
  timeout 3 "$BIN" subscribe --server tcp://127.0.0.1:${TCP[$s]} 'orders/#' --from earliest || true
done
echo "--- bridge status on site-a:"
curl -s http://127.0.0.1:${HTTP[a]}/v1/connectors; echo
