#!/usr/bin/env bash
# Runs ksqlDB's own conformance files (read from ../shared, never copied here) and fails when a
# case listed in tests/conformance/passing.txt fails.
set -euo pipefail
cd "$(dirname "$0")/.."
QTT="${RUNNEL_QTT_DIR:-../shared/conformance/ksql-qtt/query-validation-tests}"
if [ ! -d "$QTT" ]; then
  echo "conformance files not found at $QTT; skipping"
  exit 0
fi
cargo run -q -- test "$QTT" --baseline tests/conformance/passing.txt --json /tmp/runnel-conformance.json
