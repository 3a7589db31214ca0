#!/usr/bin/env bash
# Run every benchmark (bench/*_bench.py) one after another; each prints its own ratios.
# Not part of `make test`: they move gigabytes through throttled local origins.
#   bash bench/run.sh [ARGS passed to every benchmark]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${VENV:-$here/.venv}/bin/python
status=0
for bench in "$here"/bench/*_bench.py; do
  echo "== $(basename "$bench")"
  "$python" "$bench" "$@" || status=1
done
exit $status
