#!/usr/bin/env bash
# The main job on this machine: a real provisioning run of a local workspace (./.run/workspace)
# with the local defaults. No internet: ComfyUI comes from a local stand-in repo and the demo
# model from an HTTP origin on loopback that this script starts and stops.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="${VENV:-$here/.venv}/bin:$PATH"
export ANSIBLE_CONFIG="$here/ansible.cfg"
run=$here/.run
mkdir -p "$run/origin" "$run/manifests" "$run/workflows"

# Stand-ins for what a pod gets from upstream and its image: ComfyUI's git repo and the pod's
# venv (comfyui and custom_nodes roles; see playbooks/vars/local-demo.yml).
[ -d "$run/upstream/ComfyUI/.git" ] || python -c 'import sys; sys.path.insert(0, "tests")
from harness.git_repos import make_comfyui_repo
make_comfyui_repo(".run/upstream/ComfyUI")'
[ -x "$run/venv/bin/python" ] || python3 -m venv "$run/venv"

# A template workflow, as an image would bake into /opt/workflows.
[ -f "$run/workflows/demo.json" ] || echo '{"demo": "template workflow"}' > "$run/workflows/demo.json"

# A demo model on a loopback origin. The port is kept between runs so the manifest (and so the
# second run's changed=0) stays the same.
model=$run/origin/demo-lora.safetensors
[ -f "$model" ] || head -c 4194304 /dev/urandom > "$model"
port=$(cat "$run/origin/port" 2>/dev/null || true)
if [ -z "$port" ] || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "$port" > "$run/origin/port"
fi
python -m http.server --bind 127.0.0.1 --directory "$run/origin" "$port" >"$run/origin/server.log" 2>&1 &
origin_pid=$!
trap 'kill "$origin_pid" 2>/dev/null || true' EXIT
for _try in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
sha=$(sha256sum "$model" | cut -d' ' -f1)
printf '# Demo model for make run, served from loopback.\nurl|http://127.0.0.1:%s/demo-lora.safetensors|demo-lora.safetensors|loras|%s\n' \
  "$port" "$sha" > "$run/manifests/base_models.txt.new"
if cmp -s "$run/manifests/base_models.txt.new" "$run/manifests/base_models.txt"; then
  rm "$run/manifests/base_models.txt.new"
else
  mv "$run/manifests/base_models.txt.new" "$run/manifests/base_models.txt"
fi

ansible-playbook -c local site.yml -e "@playbooks/vars/local-demo.yml" -e "aiclipse_run_dir=$run" "$@"
echo "Provisioned $run/workspace (ComfyUI would start with $run/workspace/aiclipse/.state/launch.json)"
