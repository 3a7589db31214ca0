#!/usr/bin/env bash
# Every test, in order of speed: quality gates first (fail fast), then pytest with the real
# harness servers and containers (the molecule scenarios run inside it, tests/molecule_scenarios).
#   scripts/test.sh            everything
#   scripts/test.sh lint       ansible-lint, ansible-doc rendering, CHANGELOG.md current
#   scripts/test.sh ruff       ruff lint and format check of every Python file
#   scripts/test.sh sanity     ansible-test sanity only
#   scripts/test.sh pytest [ARGS]   pytest only (ARGS passed on)
#   scripts/test.sh molecule [ARGS]  molecule scenarios only (pytest -k default|fleet picks one)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
venv=${VENV:-$here/.venv}
export PATH="$venv/bin:$PATH"
export ANSIBLE_CONFIG="$here/ansible.cfg"
export CONTAINERS_CONF="$here/containers/containers.conf"
export ANSIBLE_NOCOLOR=1 NO_COLOR=1

stage_lint() {
  echo "== ansible-lint (production profile)"
  ansible-lint --profile production --offline -q
  echo "== ansible-doc renders every module"
  local modules
  modules=$(find plugins/modules -maxdepth 1 -name '*.py' ! -name '__init__.py' -printf '%f\n' | sed 's/\.py$//' | sort)
  for m in $modules; do
    ansible-doc "aiclipse.comfyui.$m" > /dev/null 2> /tmp/aiclipse-doc.err || {
      echo "ansible-doc aiclipse.comfyui.$m failed:"; cat /tmp/aiclipse-doc.err; return 1; }
    ansible-doc --json "aiclipse.comfyui.$m" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
(name, page), = doc.items()
for section in ("doc", "examples", "return"):
    assert page.get(section), f"{name}: {section} is empty"
assert page["doc"].get("attributes"), f"{name}: DOCUMENTATION has no attributes"
'
  done
  echo "== changelog fragments lint, CHANGELOG.md generated from them"
  bash scripts/changelog.sh --check
}

stage_ruff() {
  echo "== ruff check (pyproject.toml [tool.ruff])"
  ruff check --no-cache .
  echo "== ruff format --check (run \`ruff format .\` to fix)"
  ruff format --check --no-cache .
}

stage_sanity() {
  echo "== ansible-test sanity"
  bash scripts/sanity.sh
}

stage_pytest() {
  # Test files run side by side (pytest-xdist, one file per worker at a time, so a file's
  # fixtures and order stay as written): most tests wait on servers, containers and child
  # processes, so three workers fit two cores. AICLIPSE_TEST_WORKERS=0 runs them in one process.
  local workers=${AICLIPSE_TEST_WORKERS:-3}
  echo "== pytest ($workers workers)"
  python -m pytest -n "$workers" --dist loadfile "$@"
}

stage_molecule() {
  # The scenarios run from pytest (tests/molecule_scenarios/), which starts the servers their
  # pods reach; the pytest stage collects them too, so `all` does not run them twice.
  echo "== molecule (through pytest)"
  python -m pytest tests/molecule_scenarios "$@"
}

case "${1:-all}" in
  lint) stage_lint ;;
  ruff) stage_ruff ;;
  sanity) stage_sanity ;;
  pytest) shift; stage_pytest "$@" ;;
  molecule) shift; stage_molecule "$@" ;;
  all) stage_ruff; stage_lint; stage_sanity; stage_pytest ;;
  *) echo "usage: $0 [ruff|lint|sanity|pytest [ARGS]|molecule|all]" >&2; exit 2 ;;
esac
