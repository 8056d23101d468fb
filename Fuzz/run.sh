#!/usr/bin/env bash
# Runs each libFuzzer harness for FUZZ_SECONDS (default 600) on a working copy of its committed seed
# corpus (Fuzz/corpus/<name>), then prints the executions and coverage it reached. A crash stops
# with the reproducer under .build-fuzz/artifacts/<name>/ and a non-zero exit.
# Usage: Fuzz/run.sh [name...]   names: frame cloudevents cesql routefile (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
declare -A product=([frame]=FuzzFrameDecoder [cloudevents]=FuzzCloudEvents [cesql]=FuzzCESQL [routefile]=FuzzRouteFile)
names=("$@")
((${#names[@]})) || names=(frame cloudevents cesql routefile)
for n in "${names[@]}"; do [[ -n "${product[$n]:-}" ]] || { echo "unknown harness $n" >&2; exit 2; }; done

products=()
for n in "${names[@]}"; do products+=("${product[$n]}"); done
Fuzz/build.sh "${products[@]}" 2>&1 | grep -v "Cannot export local symbol" || true

# The Swift runtime's backtracer and ASan both want SIGSEGV; let ASan report.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
status=0
summary=()
for n in "${names[@]}"; do
  work=.build-fuzz/corpus/$n artifacts=.build-fuzz/artifacts/$n log=.build-fuzz/$n.log
  mkdir -p "$work" "$artifacts"
  cp -n Fuzz/corpus/$n/* "$work"/ 2>/dev/null || true
  echo "== fuzz $n (${product[$n]}) for ${seconds}s"
  if .build-fuzz/debug/${product[$n]} "$work" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
       -max_len=16384 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $log and $artifacts/)"; status=1
    grep -m 20 -E "Fatal error|ERROR: AddressSanitizer|SUMMARY|Test unit written" "$log" || true
  fi
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -oE '#[0-9]+.*cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+')
  summary+=("$n: ${execs:-?} executions in ${seconds}s, ${cov:-no coverage line}; $result")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $status
