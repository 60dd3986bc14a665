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
# ksqlDB's REST query-validation tests (RQTT) against a live in-process REST server; fails when a
# case listed in tests/conformance/rest-passing.txt fails.
RQTT="${RUNNEL_RQTT_DIR:-$(dirname "$QTT")/rest-query-validation-tests}"
if [ -d "$RQTT" ]; then
  cargo run -q -- test --rest "$RQTT" --baseline tests/conformance/rest-passing.txt \
    --json /tmp/runnel-rest-conformance.json
  # The same REST cases with the server's engine on Kafka (an embedded broker per case; set
  # RUNNEL_TEST_BOOTSTRAP to use a real cluster): an even sample of 40 of the cases that pass in
  # memory mode; any failing sampled case fails the run.
  RUST_LOG="${RUST_LOG:-warn}" cargo run -q -- test --rest --kafka --sample 40 --jobs 8 \
    --cases tests/conformance/rest-passing.txt "$RQTT"
fi
# The same cases end to end through Kafka (an embedded broker per case; set RUNNEL_TEST_BOOTSTRAP
# to use a real cluster): an even sample of 40 cases from files that pass in memory mode; any
# failing sampled case fails the run.
RUST_LOG="${RUST_LOG:-warn}" cargo run -q -- test --kafka --sample 40 --jobs 8 \
  "$QTT/project-filter.json" "$QTT/json.json" "$QTT/math.json" "$QTT/url.json" \
  "$QTT/key-schemas.json" "$QTT/kafka.json" "$QTT/row-offset-and-partition.json" \
  "$QTT/select.json" "$QTT/literals.json" "$QTT/decimal.json" "$QTT/operators.json" \
  "$QTT/to_json_string.json"
