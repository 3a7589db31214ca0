#!/usr/bin/env bash
# The main job on this machine: a real provisioning run of a local workspace (./.run/workspace)
# with the local defaults. No internet: everything the run fetches comes from loopback.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="${VENV:-$here/.venv}/bin:$PATH"
export ANSIBLE_CONFIG="$here/ansible.cfg"
mkdir -p .run
# Stand-ins for what a pod gets from upstream and its image: ComfyUI's git repo and the pod's
# venv (comfyui and custom_nodes roles; see playbooks/vars/local-demo.yml).
[ -d .run/upstream/ComfyUI/.git ] || python -c 'import sys; sys.path.insert(0, "tests")
from harness.git_repos import make_comfyui_repo
make_comfyui_repo(".run/upstream/ComfyUI")'
[ -x .run/venv/bin/python ] || python3 -m venv .run/venv
ansible-playbook -c local site.yml -e "@playbooks/vars/local-demo.yml" "$@"
