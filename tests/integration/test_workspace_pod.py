"""The workspace role at a pod's real paths, in a container: /workspace, /opt/workflows.

The vault /workspace/aiclipse is its own mount (tmpfs), as when a volume is mounted there, so
an older layout's real folders under /workspace move into it as verified copies across
filesystems. ComfyUI is a git clone holding a user's model in its own models folder; the
model moves into the vault (ComfyUI's base directory), the checkout stays exactly as git made
it, and upstream moves on under models/ after the migration: git pull just works.
"""

import pytest

from harness.ansible_run import run_playbook
from harness.paths import CONTAINERS_CONF
from harness import podman as podman_harness


class WorkspacePod(podman_harness.Container):
    """The pod of this file, swept under its own label."""

    LABEL = "aiclipse-test-workspace-pod"


PLAY = """\
- name: Pod start, workspace only
  hosts: all
  gather_facts: false
  roles:
    - role: aiclipse.comfyui.workspace
"""

SETUP = r"""
set -eu
G="git -c user.name=t -c user.email=t@t"
mkdir -p /srv/upstream && cd /srv/upstream && git init -q -b master .
for d in checkpoints loras vae diffusion_models text_encoders; do
  mkdir -p models/$d && : > models/$d/put_${d}_here
done
# Like ComfyUI: these folders and extra_model_paths.yaml are ignored; the models/ placeholders
# are tracked anyway (force-added).
printf '/models/\n/input/\n/output/\n/user/\n/custom_nodes/\n/extra_model_paths.yaml\n' > .gitignore && echo "print('v1')" > main.py
git add -f . && $G commit -q -m v1
git clone -q /srv/upstream /workspace/aiclipse/ComfyUI
head -c 2000000 /dev/urandom > /workspace/aiclipse/ComfyUI/models/loras/mine.safetensors
mkdir -p /workspace/models/checkpoints /workspace/output /opt/workflows
head -c 3000000 /dev/urandom > /workspace/models/checkpoints/old.safetensors
echo png > /workspace/output/img.png
echo '{"template": 1}' > /opt/workflows/txt2img.json
sha256sum /workspace/models/checkpoints/old.safetensors /workspace/aiclipse/ComfyUI/models/loras/mine.safetensors \
  | awk '{print $1}' > /root/sums
"""

VERIFY = r"""
set -eu
for s in ComfyUI models workflows input output logs custom_nodes; do readlink /workspace/$s; done
test -d /workspace/aiclipse/ComfyUI/models && test ! -L /workspace/aiclipse/ComfyUI/models
sha256sum /workspace/aiclipse/models/checkpoints/old.safetensors /workspace/aiclipse/models/loras/mine.safetensors \
  | awk '{print $1}' | diff - /root/sums
cat /workspace/output/img.png /workspace/workflows/txt2img.json
ls /workspace/ComfyUI/models/vae/put_vae_here /workspace/models/vae/put_vae_here
git -C /workspace/aiclipse/ComfyUI status --porcelain --untracked-files=all
"""

UPSTREAM_MOVES_ON = r"""
set -eu
cd /srv/upstream && echo "see docs" > models/checkpoints/put_checkpoints_here
mkdir -p models/audio_encoders && : > models/audio_encoders/put_audio_encoders_here
git rm -q models/loras/put_loras_here
echo "print('v2')" > main.py && git add -f . && git -c user.name=t -c user.email=t@t commit -q -m v2
cd /workspace/aiclipse/ComfyUI && git pull -q --ff-only && cat main.py
git status --porcelain
"""


@pytest.mark.podman
def test_pod_start_migrates_an_older_volume_and_git_pull_still_works(podman_image, tmp_path):
    podman_harness.remove_leftovers(WorkspacePod.LABEL)
    pod = WorkspacePod(podman_image, extra_args=["--mount", "type=tmpfs,destination=/workspace/aiclipse"]).start()
    try:
        check_pod(pod, tmp_path)
    finally:
        pod.remove()


def check_pod(pod, tmp_path):
    pod.sh(SETUP)
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)

    def provision():
        run = run_playbook(
            playbook,
            inventory=f"{pod.name},",
            env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
            args=["-c", "containers.podman.podman", "-e", "ansible_python_interpreter=/usr/bin/python3"],
        )
        assert run.rc == 0 and run.failed == 0, run.stdout[-4000:] + run.stderr[-2000:]
        return run

    assert provision().changed > 0
    out = pod.sh(VERIFY).stdout.split("\n")
    assert out[:7] == [
        "/workspace/aiclipse/ComfyUI",
        "/workspace/aiclipse/models",
        "/workspace/aiclipse/user/default/workflows",
        "/workspace/aiclipse/input",
        "/workspace/aiclipse/output",
        "/workspace/aiclipse/logs",
        "/workspace/aiclipse/custom_nodes",
    ]
    assert out[7:9] == ["png", '{"template": 1}']
    assert out[11:] == [""], "git sees a change in ComfyUI's checkout"
    # The vault really is another filesystem, so the old folders came over as copies.
    devices = pod.sh("stat -c %d /workspace /workspace/aiclipse").stdout.split()
    assert devices[0] != devices[1]

    assert provision().changed == 0

    pulled = pod.sh(UPSTREAM_MOVES_ON).stdout
    assert pulled == "print('v2')\n", pulled  # pulled, and `git status` is clean
    provision()  # brings the model folder upstream added into the vault
    assert pod.sh("ls /workspace/models/audio_encoders").stdout == "put_audio_encoders_here\n"
    # The user's model in a folder whose placeholder upstream deleted is still there.
    assert pod.sh("ls /workspace/models/loras").stdout.split() == ["mine.safetensors", "put_loras_here"]
    assert provision().changed == 0
