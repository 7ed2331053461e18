#!/usr/bin/env bash
# Quick start 1: installs what is missing, builds, then starts a broker on a private segment and
# runs worker processes contending for a few sessions, printing grants, waits, revokes and handoffs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target sessionbroker-demo session-broker sessionctl >/dev/null
exec build/examples/sessionbroker-demo --broker build/broker/session-broker "$@"
