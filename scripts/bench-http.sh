#!/usr/bin/env bash
# HTTP publish throughput against the machine's ceiling, side by side in one run:
#   1. the bare SwiftNIO server (`meshgate bare-http`, answers 200 to everything),
#   2. meshgate's publish path (fsync always, a fresh data directory),
# each driven by `wrk -t2 -c128 -d5s` POSTing 256-byte bodies to /v1/publish/bench/http.
# Prints both requests/s and the ratio (target: >= 0.8). Builds the release binary unless
# MESHGATE_BIN points at one. Env: DURATION (5s), CONNECTIONS (128), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-128}
THREADS=${THREADS:-2}

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench-http: installing wrk" >&2
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

BIN=${MESHGATE_BIN:-}
if [ -z "$BIN" ]; then
  swift build -c release --static-swift-stdlib --product meshgate >&2
  BIN=.build/release/meshgate
fi

work=$(mktemp -d /tmp/meshgate-bench-http.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A 256-byte body, POSTed on every request.
body=$(head -c 256 /dev/zero | tr '\0' 'x')
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$body"
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

# Waits for "listening NAME=HOST:PORT" in a log file and prints the port.
wait_port() {
  local file=$1 name=$2
  for _ in $(seq 1 200); do
    local port
    port=$(grep -o "listening $name=[^ ]*" "$file" 2>/dev/null | head -1 | sed 's/.*://')
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    sleep 0.05
  done
  echo "bench-http: $name did not start; its log:" >&2; cat "$file" >&2; return 1
}

rps() { awk '/Requests\/sec/ { print $2 }'; }

"$BIN" bare-http --port 0 > "$work/bare.log" 2>&1 & pids+=($!)
bare_port=$(wait_port "$work/bare.log" bare-http)
"$BIN" serve --http 127.0.0.1:0 --data "$work/data" --fsync always --node bench > "$work/meshgate.log" 2>&1 & pids+=($!)
mesh_port=$(wait_port "$work/meshgate.log" http)

# One warm-up second each, then the measured runs.
wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s "$work/post.lua" "http://127.0.0.1:$bare_port/v1/publish/bench/http" >/dev/null
wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s "$work/post.lua" "http://127.0.0.1:$mesh_port/v1/publish/bench/http" >/dev/null

bare=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$work/post.lua" "http://127.0.0.1:$bare_port/v1/publish/bench/http" | tee "$work/bare.wrk" | rps)
mesh=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$work/post.lua" "http://127.0.0.1:$mesh_port/v1/publish/bench/http" | tee "$work/mesh.wrk" | rps)
errors=$(grep -E "Non-2xx|Socket errors" "$work/mesh.wrk" || true)

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, POST 256 B to /v1/publish/bench/http"
printf "bare SwiftNIO (ceiling)      %12.0f requests/s\n" "$bare"
printf "meshgate publish (fsync=always) %9.0f requests/s\n" "$mesh"
awk -v m="$mesh" -v b="$bare" 'BEGIN { printf "ratio                        %12.2f\n", m / b }'
[ -n "$errors" ] && echo "meshgate: $errors"
events=$(curl -s "http://127.0.0.1:$mesh_port/v1/topics" | grep -o '"end_offset":[0-9]*' | head -1 | cut -d: -f2 || true)
echo "events stored: ${events:-?}"
