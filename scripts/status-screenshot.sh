#!/usr/bin/env bash
# Regenerates docs/images/status-page.png and status-page-phone.png: starts a gateway with demo
# routes (one healthy, one dead-lettering, one waiting for a connector runtime), drives traffic
# through it and photographs the status page in headless Chromium.
# Usage: scripts/status-screenshot.sh [path/to/meshgate]   (default .build/release/meshgate)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/meshgate}
work=$(mktemp -d)
http=127.0.0.1:18480 tcp=127.0.0.1:17480
mkdir -p "$work/routes"
cat > "$work/routes/demo.yaml" <<'YAML'
version: 1
connectors:
  billing: {type: webhook, url: "http://127.0.0.1:9000/hook"}
  site-b:  {type: meshgate, url: "tcp://127.0.0.1:7171"}
routes:
  - name: audit
    from: "orders/#"
    to: [{topic: "audit/{topic}"}]
  - name: eu-only
    from: "orders/+"
    where: "subject = 'eu'"
    to: [{topic: "regions/eu/{1}"}]
  - name: by-region
    from: "orders/#"
    to:
      - topic: "regional/{1}"
        dead_letter: "dlq/by-region"
  - name: billing
    from: "orders/#"
    to: [{connector: billing}]
  - name: to-site-b
    from: "sensors/#"
    to: [{connector: site-b, topic: "site-a/{topic}"}]
YAML
"$bin" serve --http $http --tcp $tcp --data "$work/data" --routes "$work/routes" --node site-a 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://$http/readyz" >/dev/null && break; sleep 0.1; done
"$bin" bench publish --server tcp://$tcp --topic sensors/temperature --rate 800 --duration 12 --connections 1 >/dev/null 2>&1 &
"$bin" bench publish --server tcp://$tcp --topic sensors/humidity --rate 300 --duration 12 --connections 1 >/dev/null 2>&1 &
(
  for i in $(seq 400); do
    region=$( (( i % 3 == 0 )) && echo eu || echo us )
    curl -s -o /dev/null -H "ce-subject: $region" -H 'content-type: application/json' \
      -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
      -d "{\"order\":$i,\"total\":$((i * 7 % 300))}" "http://$http/v1/publish/orders/$region"
    (( i % 25 == 0 )) && curl -s -o /dev/null -d '{"order":"bulk"}' "http://$http/v1/publish/orders"
    sleep 0.02
  done
) &
sleep 6
mkdir -p docs/images
shoot() { # WIDTHxHEIGHT OUT [scale]
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/chromium" \
    --force-device-scale-factor="${3:-1}" --window-size="$1" --virtual-time-budget=4000 \
    --screenshot="$2" "http://$http/" 2>/dev/null
}
shoot 1280,900 docs/images/status-page.png
shoot 390,1100 docs/images/status-page-phone.png 2
wait %2 %3 2>/dev/null || true
echo "wrote docs/images/status-page.png and docs/images/status-page-phone.png"
