#!/usr/bin/env bash
# The benchmark suite (bench/suite.py): one table of ratios, every figure measured side by side
# in the same run. Not part of `make test`: it moves gigabytes and starts containers.
#   bash bench/run.sh [--quick] [--only warm,skip,...] [--repeat N]
# Single benchmarks with their own options: .venv/bin/python bench/<name>_bench.py --help
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${VENV:-$here/.venv}/bin/python
exec "$python" "$here/bench/suite.py" "$@"
