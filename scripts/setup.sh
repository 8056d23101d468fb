#!/usr/bin/env bash
# Installs the system packages meshgate builds against and its tests use, when they are missing.
# Debian/Ubuntu; run as root or with sudo available. Safe to run again: it installs only what lacks.
set -euo pipefail

packages=(
  libmosquitto-dev       # MQTT connector (libmosquitto)
  libcurl4-openssl-dev   # webhook connector (libcurl)
  libmimalloc-dev        # the executables' memory allocator (docs/architecture.md, "Memory allocator")
  libssl-dev             # webhook signatures: HMAC-SHA256 from the libcrypto libcurl already uses
  mosquitto              # the real broker the MQTT tests start
  mosquitto-clients      # mosquitto_pub / mosquitto_sub in tests and examples
  python3-paho-mqtt      # the MQTT tests' publisher (reconnects and resends across broker restarts)
  openssl                # the MQTT TLS test generates its certificates
  python3                # interop tests (CloudEvents SDK, http.server receivers)
  python3-jsonschema     # route files are validated against schema/routes.schema.json in the tests
  python3-yaml
  python3-pip            # installs the Python packages below when missing
  curl
  wrk                    # scripts/bench-http.sh and meshgate bench webhook compare against it
  prometheus             # promtool: the tests check the /metrics exposition with `promtool check metrics`
  chromium               # the status page is tested in headless Chromium (and its screenshot taken)
  fonts-dejavu-core      # a font for Chromium's screenshots
  libnats-dev            # meshgate-bench drives NATS JetStream through its C client
  libhiredis-dev         # meshgate-bench drives Redis through its C client
  nats-server            # make bench: the JetStream peer
  redis-server           # make bench: the Redis streams peer
  gnuplot-nox            # make bench: the plots in docs/bench/
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "meshgate setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages the tests use: the official CloudEvents SDK (interop) and the OpenAPI validator;
# schemathesis for `make fuzz-api`.
py_missing=()
python3 -c "import cloudevents.core.bindings.http" 2>/dev/null || py_missing+=(cloudevents)
python3 -c "import openapi_spec_validator" 2>/dev/null || py_missing+=(openapi-spec-validator)
command -v schemathesis >/dev/null 2>&1 || py_missing+=(schemathesis)   # make fuzz-api
if ((${#py_missing[@]})); then
  echo "meshgate setup: pip installing ${py_missing[*]}"
  python3 -m pip install -q "${py_missing[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${py_missing[@]}"
fi

# The reference Standard Webhooks verifier, for the webhook signature tests and the example receiver.
if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
  echo "meshgate setup: installing the Python package standardwebhooks"
  python3 -m pip install --quiet standardwebhooks 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages standardwebhooks
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "meshgate setup: Swift 6 is required (https://www.swift.org/install/linux/) and was not found on PATH" >&2
  exit 1
fi
