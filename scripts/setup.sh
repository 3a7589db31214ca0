#!/usr/bin/env bash
# One-time (and idempotent) set-up of a Debian/Ubuntu machine as root: system packages the
# collection and its tests use, and a project venv with the Python dependencies.
# Re-running is cheap: apt is skipped when every package is present, pip when
# pyproject.toml has not changed since the last install.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$here/.venv}

apt_packages=(
  aria2 git rsync openssh-server openssh-client dash ca-certificates make shellcheck
  # gpg: CONFIG_VERIFY_COMMIT checks commit signatures (tests sign with throwaway keys)
  gnupg
  python3 python3-venv
  # test harness: HTTP origin, containers, base image
  nginx-light podman runc debootstrap uidmap fuse-overlayfs
  # the fault origin's HTTPS side makes a throwaway certificate
  openssl
)

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx is started per test on its own port; the packaged service on :80 is not ours to run.
systemctl disable --now nginx >/dev/null 2>&1 || true

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp=$venv/.aiclipse-installed
want=$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # The collection is used from the checkout, so only its dependencies are installed: the
  # runtime ones and the test extra, read from pyproject.toml (no package build needed).
  "$venv/bin/python" - "$here/pyproject.toml" > "$venv/aiclipse-requirements.txt" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    project = tomllib.load(handle)["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$venv/aiclipse-requirements.txt"
  echo "$want" > "$stamp"
fi
version=$("$venv/bin/ansible-playbook" --version)
echo "setup.sh: ready (${version%%$'\n'*})"
