#!/usr/bin/env bash
# Builds the libFuzzer harnesses (debug, -sanitize=fuzzer,address) into .build-fuzz.
# Usage: Fuzz/build.sh [harness...]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(FuzzFrameDecoder FuzzCloudEvents FuzzCESQL FuzzRouteFile)
for h in "${harnesses[@]}"; do
  MESHGATE_FUZZ=1 ${SWIFT:-swift} build -c debug --scratch-path .build-fuzz --product "$h" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
done
