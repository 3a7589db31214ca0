#!/usr/bin/env bash
# ansible-test sanity, offline: ansible-test needs the collection at
# ansible_collections/<ns>/<name> and downloads get-pip.py for its venvs. Give it a copy of
# the tracked tree and our offline get-pip stand-in, then run every sanity test.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}
pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

reqs=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py
pip_version=$(sed -n "s/.*pip='\([0-9.]*\)'.*/\1/p" "$reqs" | head -n1)
mkdir -p ~/.ansible/test/cache
install -m 0644 "$here/scripts/offline_get_pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

work=$(mktemp -d /tmp/aiclipse-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/aiclipse/comfyui
mkdir -p "$dest"
# Only what git tracks or would track: the same tree a clean clone has.
(cd "$here" && git ls-files -co --exclude-standard -z | grep -zv '^collections/' \
  | tar --null --ignore-failed-read -T - -cf -) | tar -C "$dest" -xf -
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1
"$venv/bin/ansible-test" sanity --python "$pyver" --requirements --color no "$@"
