# The two commands of the README: `make run` and `make test`.
SWIFT ?= swift
DATA ?= ./data
BENCH_FLAGS ?=

.PHONY: run test test-bridge setup build release bench bench-quick bench-log bench-log-quick bench-routes bench-mqtt bench-webhook fuzz fuzz-quick fuzz-api chaos clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build

## The Swift runtime and Foundation are linked in statically: only the code the gateway uses is
## mapped, and start-up relocates nothing in a dozen shared libraries (idle RSS, docs/bench/profile.md).
release: setup
	$(SWIFT) build -c release --static-swift-stdlib

## Build and start the gateway on its embedded default (data in ./data).
run: release
	.build/release/meshgate serve --data $(DATA)

# Suites that SIGKILL and restart real processes (log writer, gateway, router, MQTT, webhook,
# bridge sites). They run after the others, one group at a time, so their load never starves the
# timing windows of the rest and their own kill timing stays meaningful.
PROCESS_GROUPS = CrashTests KillTests ServeProcessTests EgressOutageTests IngressDurabilityTests BridgeProcessTests
PROCESS_SUITES = $(subst $(eval) ,|,$(strip $(PROCESS_GROUPS)))

## Build and run the whole test suite.
test: setup
	$(SWIFT) build --build-tests
	@# The build leaves gigabytes of object files in the page cache; flush them before suites whose
	@# fsyncs would otherwise queue behind that writeback for seconds at a time.
	sync
	@# One test at a time (about a minute): run in parallel on a 2-thread cooperative pool, the
	@# suites stalled together for ~30 s now and then, every timing window failing at once.
	$(SWIFT) test --skip-build --no-parallel --skip '$(PROCESS_SUITES)'
	@for group in $(PROCESS_GROUPS); do \
	  echo "== $$group"; \
	  timeout 900 $(SWIFT) test --skip-build --filter "$$group" || exit 1; \
	done

## The bridge suite with real meshgate sites (A→B outage, kill -9, ring and full mesh).
test-bridge: setup
	$(SWIFT) build --build-tests
	timeout 900 $(SWIFT) test --skip-build --filter BridgeProcessTests

## The benchmark suite side by side with its peers (JetStream, Redis, mosquitto, bare SwiftNIO; release
## build, several minutes): writes docs/bench/results.json, docs/benchmarks.md and the plots in docs/bench/.
bench: release
	scripts/bench-suite.py --out docs/bench/results.json $(BENCH_FLAGS)
	scripts/bench-doc.py docs/bench/results.json docs/benchmarks.md docs/bench

## The main scenarios in 1 s runs (under two minutes): results in .build/bench-quick.json, the committed
## documents untouched; prints the targets and the comparison with the committed run.
bench-quick: release
	scripts/bench-suite.py --quick --out .build/bench-quick.json $(BENCH_FLAGS)
	scripts/bench-doc.py .build/bench-quick.json .build/bench-quick.md .build/bench-quick-plots
	@sed -n '/^## Targets/,/^## Durable/p' .build/bench-quick.md | sed '$$d'
	@if [ -f docs/bench/results.json ]; then .build/release/meshgate bench compare docs/bench/results.json .build/bench-quick.json; fi

## The built-in log alone against the disk's own ceiling (release build); also part of `make bench`.
bench-log: release
	.build/release/meshgate bench log --json .build/bench-log.json $(BENCH_FLAGS)

bench-log-quick: release
	.build/release/meshgate bench log --quick --recovery-mib 0 $(BENCH_FLAGS)

## Route matching and CESQL filter throughput (release build).
bench-routes: release
	.build/release/meshgate bench routes $(BENCH_FLAGS)

## The MQTT connector against mosquitto_pub/mosquitto_sub on a local broker (release build).
bench-mqtt: release
	.build/release/meshgate bench mqtt $(BENCH_FLAGS)

## Webhook connector throughput and latency against wrk on the same receiver (release build).
bench-webhook: release
	.build/release/meshgate bench webhook $(BENCH_FLAGS)

## libFuzzer harnesses (frame decoder, CloudEvents JSON, CESQL, route files), FUZZ_SECONDS each
## (default 600), debug build with -sanitize=fuzzer,address in .build-fuzz — docs/reliability.md.
FUZZ_SECONDS ?= 600
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) Fuzz/run.sh $(FUZZ)

fuzz-quick: setup
	FUZZ_SECONDS=30 Fuzz/run.sh $(FUZZ)

## schemathesis against the OpenAPI document served by a running gateway.
fuzz-api: build
	scripts/fuzz-api.sh .build/debug/meshgate

## Fault injection against real gateways (kill -9, disk full, slow consumer, flapping webhook,
## MQTT broker restarts, a cut bridge); writes the results table into docs/reliability.md.
chaos: build
	/usr/bin/python3 scripts/chaos/chaos.py --binary .build/debug/meshgate $(CHAOS_FLAGS)

clean:
	rm -rf .build .build-fuzz .bench-log .bench-suite-*
