#!/usr/bin/env bash
# The main job on this machine: a real provisioning run of a local workspace (./.run/workspace)
# with the local defaults. No internet: everything the run fetches comes from loopback.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="${VENV:-$here/.venv}/bin:$PATH"
export ANSIBLE_CONFIG="$here/ansible.cfg"
mkdir -p .run
ansible-playbook -c local site.yml -e "@playbooks/vars/local-demo.yml" "$@"
