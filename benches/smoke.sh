#!/usr/bin/env bash
# Smoke check of the benchmark suite (not part of `cargo test`): one quick
# workload end to end, into a scratch folder. Needs target/release/parpy and PyPI
# (or an existing benches/.venv).
#
#   bash benches/smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
target/release/parpy benches/run.py --quick --only throughput --out "$out"
for f in benchmarks.md benchmarks.json; do
    test -s "$out/$f" || { echo "smoke: $f was not written" >&2; exit 1; }
done
grep -q '"parpy"' "$out/benchmarks.json" || { echo "smoke: no parpy figures" >&2; exit 1; }
echo "smoke: ok"
