#!/usr/bin/env bash
# Two sites on loopback: site-a forwards orders/# to site-b as site-a/orders/...
# Publishes on A, shows B's copy and the bridge status, then stops both.
set -euo pipefail
BIN=${MESHGATE:-.build/release/meshgate}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
A_TCP=$(port); B_TCP=$(port); A_HTTP=$(port)
mkdir -p "$WORK/a/routes" "$WORK/b/routes"
sed "s/SITE_B_PORT/$B_TCP/" "$HERE/site-a.yaml" > "$WORK/a/routes/bridge.yaml"
"$BIN" serve --node site-b --data "$WORK/b/data" --routes "$WORK/b/routes" --http 127.0.0.1:0 --tcp 127.0.0.1:$B_TCP 2>"$WORK/b.log" &
"$BIN" serve --node site-a --data "$WORK/a/data" --routes "$WORK/a/routes" --http 127.0.0.1:$A_HTTP --tcp 127.0.0.1:$A_TCP 2>"$WORK/a.log" &
sleep 2
for i in 1 2 3; do "$BIN" publish --server tcp://127.0.0.1:$A_TCP orders/eu "order $i"; done
sleep 1
echo "--- site-b holds:"
timeout 3 "$BIN" subscribe --server tcp://127.0.0.1:$B_TCP 'site-a/#' --from earliest || true
echo "--- bridge status on site-a:"
curl -s http://127.0.0.1:$A_HTTP/v1/connectors; echo
