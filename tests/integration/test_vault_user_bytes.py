"""No user byte is lost, whatever a pod brings: names like the collection's scratch names, mounts
and links at odd places, non-UTF-8 names, on_conflict=fail (the workspace role through
ansible-playbook, and the custom_nodes module)."""

import collections
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.ansible_run import json_result_env, module_argv, module_result, run_module, run_playbook
from harness.git_repos import git, make_comfyui_repo, make_node_repo
from harness.paths import REPO
from harness.python_env import make_venv
from harness.site_pod import site_vars

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.git_checkout import make_staging  # noqa: E402
from ansible_collections.aiclipse.comfyui.plugins.module_utils._workspace.safe_merge import Scratch  # noqa: E402

PLAY = """\
- name: Pod start, workspace only
  hosts: localhost
  gather_facts: false
  roles:
    - role: aiclipse.comfyui.workspace
"""


def contents(*tops):
    """The multiset of every regular file's bytes under `tops` (hard links counted once)."""
    found, seen = collections.Counter(), set()
    for top in tops:
        for current, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if d != ".git"]
            for name in names:
                path = os.path.join(current, name)
                st = os.lstat(path)
                if not os.path.isfile(path) or os.path.islink(path) or (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                with open(path, "rb") as handle:
                    found[hashlib.sha256(handle.read()).hexdigest()] += 1
    return found


def lost(before, after):
    return {digest: count - after[digest] for digest, count in before.items() if after[digest] < count}


@pytest.fixture
def workspace(tmp_path):
    """(start, root, vault, upstream): `start(**vars)` runs the workspace role, returns the run."""
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    root = tmp_path / "workspace"
    vault = root / "aiclipse"
    vault.mkdir(parents=True)
    templates = tmp_path / "opt-workflows"
    templates.mkdir()
    (templates / "template.json").write_text('{"template": 1}')
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)

    def start(check=False, **extra):
        return run_playbook(
            playbook,
            {
                "aiclipse_root": str(root),
                "workspace_workflow_templates_dir": str(templates),
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                **extra,
            },
            inventory="localhost,",
            check=check,
            args=["-c", "local"],
        )

    return start, root, vault, upstream


def test_user_files_named_like_scratch_files_survive_every_start(workspace):
    start, root, vault, upstream = workspace
    git(root, "clone", "-q", upstream.url, str(root / "ComfyUI"))
    mine = {
        root / "models" / "checkpoints" / ".aiclipse-seed-mine": b"user file named like a seed",
        root / "models" / "vae" / ".aiclipse-seed-2": b"another",
        root / "models" / "checkpoints" / ".aiclipse-partial-mine": b"named like a partial copy",
        root / "ComfyUI" / "models" / "checkpoints" / ".aiclipse-restore-mine": b"named like a restore",
        root / "ComfyUI" / ".aiclipse-tmp-notes": b"named like a temporary file",
    }
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink(root / "models", vault / "models")
    os.symlink(root / "ComfyUI", vault / "ComfyUI")
    before = contents(root)
    for attempt in range(2):
        run = start()
        assert run.rc == 0 and run.failed == 0, run.stdout[-3000:]
        assert not lost(before, contents(root)), attempt
    # Where each one is now: the vault's models, and the checkout's root.
    assert (vault / "models" / "checkpoints" / ".aiclipse-seed-mine").read_bytes() == b"user file named like a seed"
    assert (vault / "models" / "vae" / ".aiclipse-seed-2").read_bytes() == b"another"
    assert (vault / "models" / "checkpoints" / ".aiclipse-restore-mine").read_bytes() == b"named like a restore"
    assert (vault / "ComfyUI" / ".aiclipse-tmp-notes").read_bytes() == b"named like a temporary file"


def test_a_recorded_scratch_file_of_a_killed_write_is_removed(workspace):
    """What the journal names goes (the other side of keeping what it does not name)."""
    start, root, vault, upstream = workspace
    git(vault, "clone", "-q", upstream.url, str(vault / "ComfyUI"))
    first = start()
    assert first.rc == 0, first.stdout[-3000:]
    fd, leftover, dummy = Scratch(str(vault / ".state" / "layout")).new_file(str(vault / "ComfyUI"))
    os.write(fd, b"half a file")
    os.close(fd)
    run = start()
    assert run.rc == 0, run.stdout[-3000:]
    assert not os.path.lexists(leftover)
    assert not list((vault / ".state" / "layout" / "scratch").iterdir())


def test_folders_named_like_staging_directories_survive_the_custom_nodes_module(tmp_path):
    vault = tmp_path / "vault"
    (vault / ".state").mkdir(parents=True)
    dest = vault / "custom_nodes"
    node = make_node_repo(tmp_path / "src" / "NodeA")
    mine = {
        dest / ".aiclipse+staging-mine" / "sub" / "f": b"a folder of the user's",
        dest / ".aiclipse-staging-old" / "checkout" / "notes.txt": b"shaped like an old staging folder",
    }
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # A staging directory a killed run left: recorded, so it goes.
    killed = Path(make_staging(str(dest)))
    (killed / "checkout").mkdir()
    (killed / "checkout" / "half").write_bytes(b"half a clone")
    for attempt in range(2):
        result, dummy = run_module("custom_nodes", {"dest": str(dest), "nodes": [node.url]})
        assert not result.get("failed"), result
        for path, data in mine.items():
            assert path.read_bytes() == data, (attempt, path)
    assert not killed.exists()
    assert (dest / "NodeA" / ".git").is_dir()


def plain_clone_pod(root):
    """A volume another ComfyUI template made: /workspace/ComfyUI is the user's own clone (a local
    commit, an uncommitted edit, a model, a custom node), and there is no vault yet."""
    upstream = make_comfyui_repo(root / "upstream/ComfyUI")
    make_venv(root / "venv")
    (root / "workflows").mkdir()
    (root / "workflows/txt2img.json").write_text('{"nodes": []}\n')
    (root / "manifests").mkdir()
    # The model the user already has: it counts as present, nothing is downloaded (port 9 is shut).
    (root / "manifests/t_models.txt").write_text(
        "url|http://127.0.0.1:9/user.safetensors|user.safetensors|checkpoints\n"
    )
    (root / "manifests/t_nodes.txt").write_text("# none\n")
    workspace = root / "workspace"
    workspace.mkdir()
    comfy = workspace / "ComfyUI"
    git(workspace, "clone", "-q", upstream.url, str(comfy))
    (comfy / "models/checkpoints/user.safetensors").write_bytes(b"user checkpoint in the old clone")
    (comfy / "custom_nodes/MyNode").mkdir()
    (comfy / "custom_nodes/MyNode/__init__.py").write_bytes(b"NODE_CLASS_MAPPINGS = {}\n")
    (comfy / "main.py").write_bytes((comfy / "main.py").read_bytes() + b"\n# the user's local patch\n")
    git(comfy, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qam", "my local commit")
    (comfy / "comfy/__init__.py").write_bytes(b"# an uncommitted edit\n")
    return workspace, workspace / "aiclipse", upstream


def test_a_plain_comfyui_clone_at_the_shortcut_becomes_the_vaults_through_site_yml(tmp_path):
    workspace, vault, upstream = plain_clone_pod(tmp_path)
    comfy = workspace / "ComfyUI"
    head = git(comfy, "rev-parse", "HEAD")
    before = contents(workspace)
    extra = site_vars(tmp_path, "t")
    run = run_playbook(REPO / "site.yml", extra, env={"COMFY_ARGS": ""})
    assert run.rc == 0 and run.failed == 0, run.stdout[-5000:] + run.stderr[-2000:]

    checkout = vault / "ComfyUI"
    assert checkout.is_dir() and not checkout.is_symlink()
    assert os.readlink(comfy) == str(checkout)
    # The user's repository, commits and edits: the same clone, not a fresh one merged over.
    assert git(checkout, "rev-parse", "HEAD") == head
    assert git(checkout, "log", "-1", "--format=%s") == "my local commit"
    assert (checkout / "main.py").read_bytes().endswith(b"# the user's local patch\n")
    assert (checkout / "comfy/__init__.py").read_bytes() == b"# an uncommitted edit\n"
    assert not list(checkout.glob(".git.merged-*")) and not list(checkout.rglob("*.merged-*"))
    # Its model and node moved where ComfyUI reads them (the vault, its --base-directory).
    assert (vault / "models/checkpoints/user.safetensors").read_bytes() == b"user checkpoint in the old clone"
    assert (vault / "custom_nodes/MyNode/__init__.py").read_bytes() == b"NODE_CLASS_MAPPINGS = {}\n"
    assert not (checkout / "models/checkpoints/user.safetensors").exists()
    assert not lost(before, contents(workspace))
    # The model was found where the manifest puts it: kept, not downloaded again.
    assert '"status": "present"' in run.stdout and '"failed_count": 0' in run.stdout

    again = run_playbook(REPO / "site.yml", {**extra, "aiclipse_skip_unchanged_start": False}, env={"COMFY_ARGS": ""})
    assert again.rc == 0 and again.changed == 0, again.stdout[-4000:]
    assert git(checkout, "rev-parse", "HEAD") == head


def test_a_comfyui_folder_without_git_is_adopted_and_kept_whole_in_the_backup(tmp_path):
    workspace, vault, upstream = plain_clone_pod(tmp_path)
    comfy = workspace / "ComfyUI"
    git(comfy, "checkout", "-q", "--", "comfy/__init__.py")
    shutil.rmtree(comfy / ".git")
    (comfy / "input").mkdir(exist_ok=True)
    (comfy / "input/photo.png").write_bytes(b"the user's photo")
    (comfy / "my_script.py").write_bytes(b"print('a script of the user')\n")
    before = contents(workspace)
    run = run_playbook(REPO / "site.yml", site_vars(tmp_path, "t"), env={"COMFY_ARGS": ""})
    assert run.rc == 0 and run.failed == 0, run.stdout[-5000:] + run.stderr[-2000:]
    checkout = vault / "ComfyUI"
    assert (checkout / ".git").is_dir() and os.readlink(comfy) == str(checkout)
    (backup,) = vault.glob("ComfyUI.broken-*")
    assert backup.is_dir() and not backup.is_symlink()
    # What ComfyUI reads went to the vault; what clashes with the fresh checkout is in the backup.
    assert (vault / "models/checkpoints/user.safetensors").read_bytes() == b"user checkpoint in the old clone"
    assert (vault / "input/photo.png").read_bytes() == b"the user's photo"
    assert (vault / "custom_nodes/MyNode/__init__.py").is_file()
    assert (backup / "my_script.py").read_bytes() == b"print('a script of the user')\n"
    assert (backup / "main.py").read_bytes().endswith(b"# the user's local patch\n")
    assert not lost(before, contents(workspace))


def layout_in_own_mount_namespace(vault, source, mount_at):
    """comfyui_layout run in a private mount namespace where `source` is bind-mounted at `mount_at`."""
    argv = module_argv("comfyui_layout", {"comfyui_dir": str(vault / "ComfyUI"), "vault": str(vault)})
    script = 'mount --make-rprivate / && mount --bind "$0" "$1" && shift && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, str(source), str(mount_at), *argv],
        cwd=REPO,
        env=json_result_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return module_result(proc.stdout, proc.stderr)


def test_a_volume_mounted_in_the_checkout_is_refused_before_anything_moves(tmp_path):
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    vault = tmp_path / "workspace" / "aiclipse"
    vault.mkdir(parents=True)
    git(vault, "clone", "-q", upstream.url, str(vault / "ComfyUI"))
    volume = tmp_path / "shared-volume"
    (volume / "checkpoints").mkdir(parents=True)
    (volume / "checkpoints" / "shared.safetensors").write_bytes(b"a model on the mounted volume")
    before = sorted(str(p.relative_to(volume)) for p in volume.rglob("*"))
    result = layout_in_own_mount_namespace(vault, volume, vault / "ComfyUI" / "models")
    assert result.get("failed"), result
    assert "is a mount point inside ComfyUI's checkout; nothing was moved" in result["msg"], result["msg"]
    assert f"mount the volume at {vault}/models" in result["msg"], result["msg"]
    # The volume holds what it held, nothing more; nothing of it reached the vault.
    assert sorted(str(p.relative_to(volume)) for p in volume.rglob("*")) == before
    assert (volume / "checkpoints" / "shared.safetensors").read_bytes() == b"a model on the mounted volume"
    assert not list(vault.rglob("shared.safetensors"))


def test_the_vaults_own_folder_bind_mounted_in_the_checkout_is_refused(tmp_path):
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    vault = tmp_path / "workspace" / "aiclipse"
    (vault / "models" / "checkpoints").mkdir(parents=True)
    (vault / "models" / "checkpoints" / "mine.safetensors").write_bytes(b"the user's checkpoint")
    git(vault, "clone", "-q", upstream.url, str(vault / "ComfyUI"))
    for attempt in range(2):
        result = layout_in_own_mount_namespace(vault, vault / "models", vault / "ComfyUI" / "models")
        assert result.get("failed") and "is a mount point" in result["msg"], result
        assert (vault / "models" / "checkpoints" / "mine.safetensors").read_bytes() == b"the user's checkpoint"
        assert not (vault / "models" / ".aiclipse-sweep").exists(), attempt


def tree(top):
    """Every path under `top` with what it is: a link's text, a file's bytes, or None for a folder."""
    found = {}
    for current, dirs, names in os.walk(top):
        for name in dirs + names:
            path = os.path.join(current, name)
            if os.path.islink(path):
                found[path] = "link:" + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    found[path] = handle.read()
            else:
                found[path] = None
    return found


def test_on_conflict_fail_changes_nothing_and_says_so_truly(workspace):
    start, root, vault, upstream = workspace
    (vault / "workflows").mkdir()
    (vault / "workflows" / "a.json").write_text('{"older": 1}')
    (vault / "user" / "default" / "workflows").mkdir(parents=True)
    (vault / "user" / "default" / "workflows" / "a.json").write_text('{"comfyui": 1}')
    (root / "models" / "loras").mkdir(parents=True)
    (root / "models" / "loras" / "x.safetensors").write_bytes(b"a lora")
    before = tree(root)
    run = start(workspace_on_conflict="fail")
    assert run.rc != 0 and "nothing was changed" in run.stdout, run.stdout[-3000:]
    assert f"{root}/models is a real directory" in run.stdout
    assert tree(root) == before
    # Only the older workflows folder in the way: the layout step refuses it, again changing nothing.
    os.rename(root / "models", root.parent / "models-elsewhere")
    before = tree(root)
    run = start(workspace_on_conflict="fail")
    assert run.rc != 0 and "nothing was changed" in run.stdout, run.stdout[-3000:]
    assert f"{vault}/workflows is a real directory" in run.stdout, run.stdout[-3000:]
    assert tree(root) == before


def test_names_that_are_not_utf8_in_the_checkout_do_not_stop_the_start(workspace):
    start, root, vault, upstream = workspace
    checkout = vault / "ComfyUI"
    git(vault, "clone", "-q", upstream.url, str(checkout))
    photo = os.fsencode(str(checkout / "input")) + b"/caf\xe9.png"
    lora = os.fsencode(str(checkout / "models" / "loras")) + b"/\xff\xfe.safetensors"
    os.makedirs(os.path.dirname(photo), exist_ok=True)
    with open(photo, "wb") as handle:
        handle.write(b"a photo with a Latin-1 name")
    with open(lora, "wb") as handle:
        handle.write(b"a lora with odd bytes in its name")
    run = start()
    assert run.rc == 0 and run.failed == 0, run.stdout[-3000:]
    assert "caf\\\\xe9.png" in run.stdout  # shown escaped in the results
    with open(os.fsencode(str(vault / "input")) + b"/caf\xe9.png", "rb") as handle:
        assert handle.read() == b"a photo with a Latin-1 name"
    with open(os.fsencode(str(vault / "models" / "loras")) + b"/\xff\xfe.safetensors", "rb") as handle:
        assert handle.read() == b"a lora with odd bytes in its name"
    again = start()
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]


def test_a_vault_subfolder_linking_into_the_shortcuts_own_subfolder_is_adopted(workspace):
    start, root, vault, upstream = workspace
    (root / "models" / "loras").mkdir(parents=True)
    (root / "models" / "loras" / "mine.safetensors").write_bytes(b"my lora")
    (vault / "models").mkdir()
    os.symlink(root / "models" / "loras", vault / "models" / "loras")
    before = contents(root)
    for attempt in range(2):
        run = start()
        assert run.rc == 0 and run.failed == 0, run.stdout[-3000:]
        loras = vault / "models" / "loras"
        assert loras.is_dir() and not loras.is_symlink(), attempt
        assert (loras / "mine.safetensors").read_bytes() == b"my lora"
        assert not list((vault / "models").glob("loras.merged-*"))
        assert not lost(before, contents(root))
    assert os.readlink(root / "models") == str(vault / "models")


def test_a_vault_subfolder_linking_deeper_into_the_shortcut_is_refused(workspace):
    start, root, vault, upstream = workspace
    (root / "models" / "loras" / "sub").mkdir(parents=True)
    (root / "models" / "loras" / "sub" / "mine.safetensors").write_bytes(b"my lora")
    (vault / "models").mkdir()
    os.symlink(root / "models" / "loras" / "sub", vault / "models" / "loras")
    before = tree(root / "models")
    run = start()
    assert run.rc != 0 and "it would loop afterwards" in run.stdout, run.stdout[-3000:]
    assert "nothing was changed" in run.stdout, run.stdout[-3000:]
    assert tree(root / "models") == before
    assert os.readlink(vault / "models" / "loras") == str(root / "models" / "loras" / "sub")


def test_reproducing_a_lock_keeps_the_users_commits_on_master(tmp_path):
    upstream = make_comfyui_repo(tmp_path / "upstream" / "ComfyUI")
    locked = upstream.head()
    upstream.commit({"later.py": "# upstream moved on\n"}, "upstream later")
    dest = tmp_path / "vault" / "ComfyUI"
    git(tmp_path, "clone", "-q", upstream.url, str(dest))
    branch = git(dest, "rev-parse", "--abbrev-ref", "HEAD")
    (dest / "mine.py").write_text("# the user's own work\n")
    git(dest, "add", "mine.py")
    git(dest, "commit", "-qm", "my local commit")
    mine = git(dest, "rev-parse", "HEAD")
    result, dummy = run_module(
        "comfyui_install", {"dest": str(dest), "repo_url": upstream.url, "version": locked, "enforce_version": True}
    )
    assert not result.get("failed") and result["status"] == "moved", result
    assert git(dest, "rev-parse", "HEAD") == locked
    # The user's commit is still on a branch (not only in the reflog), and the result names it.
    containing = git(dest, "branch", "--contains", mine, "--format=%(refname:short)").split()
    assert containing and result["kept_branch"] in containing and branch not in containing, result
