#!/usr/bin/env bash
# `make fuzz-api`: schemathesis against the OpenAPI document a running `meshgate serve` serves
# (GET /v1/openapi.yaml). Starts a gateway on free ports in a temporary directory (with a route file,
# so the routes endpoints have something to show), runs the checks for a bounded number of examples
# per operation, stops the gateway and removes the directory.
# Usage: scripts/fuzz-api.sh [meshgate binary]   (FUZZ_API_EXAMPLES, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-.build/debug/meshgate}
examples=${FUZZ_API_EXAMPLES:-200}
work=$(mktemp -d /tmp/meshgate-fuzz-api.XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/routes"
cp routes/orders.yaml "$work/routes/"
"$binary" serve --http 127.0.0.1:0 --tcp 127.0.0.1:0 --data "$work/data" --routes "$work/routes" --node fuzz-api \
  >"$work/serve.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 300); do
  port=$(grep -oE 'listening http=127\.0\.0\.1:[0-9]+' "$work/serve.log" | head -1 | cut -d: -f2 || true)
  [[ -n "$port" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
[[ -n "$port" ]] || { echo "meshgate did not start"; cat "$work/serve.log"; exit 1; }
echo "meshgate serve on 127.0.0.1:$port (pid $pid)"
curl -fsS -o /dev/null -X POST -H 'content-type: application/json' --data '{"total": 150}' "http://127.0.0.1:$port/v1/publish/orders/eu"

# The SSE stream never ends by design, so it is left out; every other operation is generated.
# Run from the temporary directory: schemathesis keeps its cache in the working directory.
status=0
(cd "$work" && schemathesis run "http://127.0.0.1:$port/v1/openapi.yaml" --url "http://127.0.0.1:$port" \
  --checks "${FUZZ_API_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}" \
  --exclude-path '/v1/stream/{pattern}' \
  --max-examples "$examples" --request-timeout 35 --workers 2 ${FUZZ_API_SEED:+--seed "$FUZZ_API_SEED"} \
  --suppress-health-check all --no-color) || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "meshgate exited during the run:"; tail -50 "$work/serve.log"; exit 1
fi
if grep -E 'fatal|Fatal error|panic' "$work/serve.log"; then status=1; fi
exit $status
