#!/usr/bin/env bash
# The test command the README gives: unit tests and end-to-end tests (embedded broker unless
# RUNNEL_TEST_BOOTSTRAP names an external one).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo nextest run --workspace --no-fail-fast "$@"
