"""comfyui_install and the comfyui role against a local ComfyUI stand-in repo (no internet).

Installs, seeds from a baked copy, repairs a broken checkout without losing user data, leaves
a healthy one alone, and installs requirements into a real venv only when they change (a
trapped pip proves it is not run on restart).
"""

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.ansible_run import run_module, run_playbook
from harness.comfyui_fixtures import restore_pip, trap_pip
from harness.git_repos import COMFYUI_MODEL_FOLDERS, git
from harness.git_servers import SilentServer, SmartHttpGit, publish
from harness.processes import ArgvSampler, running
from harness.python_env import installed_versions, make_wheel


def install(dest, upstream, venv=None, pip_args=(), check=False, diff=False, **extra):
    args = {
        "dest": str(dest),
        "repo_url": upstream if isinstance(upstream, str) else upstream.url,
        "protected_packages": ["faketorch"],
        **extra,
    }
    if venv is not None:
        args.update(venv=str(venv), pip_args=list(pip_args))
    result, proc = run_module("comfyui_install", args, check=check, diff=diff)
    return result, proc


def snapshot(root):
    """{relative path: bytes} of every file under root (links as 'link:<target>')."""
    files = {}
    for current, dirs, names in os.walk(root):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(current, d))]:
            path = os.path.join(current, name)
            rel = os.path.relpath(path, root)
            files[rel] = f"link:{os.readlink(path)}".encode() if os.path.islink(path) else open(path, "rb").read()
    return files


def test_clone_installs_requirements_once_and_restart_does_not_run_pip(tmp_path, comfyui_upstream, pod_venv, pip_args):
    dest = tmp_path / "vault" / "ComfyUI"
    first, dummy = install(dest, comfyui_upstream, pod_venv, pip_args, diff=True)
    assert first["changed"] and not first.get("failed"), first
    assert first["status"] == "cloned" and first["commit"] == comfyui_upstream.head()
    assert first["requirements"]["status"] == "installed"
    assert first["requirements"]["protected"] == {"faketorch": "2.0"}
    assert "checkout: missing" in first["diff"]["before"]
    assert (dest / "main.py").is_file()
    assert all((dest / "models" / f / f"put_{f}_here").is_file() for f in COMFYUI_MODEL_FOLDERS)
    versions = installed_versions(pod_venv)
    assert versions["fakedep"] == "1.0" and versions["faketorch"] == "2.0"
    assert not [p for p in dest.parent.iterdir() if (p.name.startswith(".aiclipse") and "staging" in p.name)]

    marker = trap_pip(pod_venv)
    again, dummy = install(dest, comfyui_upstream, pod_venv, pip_args)
    assert again["changed"] is False and again["status"] == "present", again
    assert again["requirements"]["status"] == "unchanged"
    assert not marker.exists(), "pip ran although requirements.txt did not change"

    # A changed requirements.txt does run pip (the trap fires, so it can fail) ...
    (dest / "requirements.txt").write_text("fakedep==2.0\nfaketorch\n")
    trapped, dummy = install(dest, comfyui_upstream, pod_venv, pip_args)
    assert trapped.get("failed") and marker.exists()
    assert "nothing recorded" in trapped["msg"]
    # ... and with the real pip it installs, records, and is quiet again afterwards.
    restore_pip(pod_venv)
    bumped, dummy = install(dest, comfyui_upstream, pod_venv, pip_args)
    assert bumped["changed"] and bumped["requirements"]["status"] == "installed"
    assert installed_versions(pod_venv)["fakedep"] == "2.0"
    quiet, dummy = install(dest, comfyui_upstream, pod_venv, pip_args)
    assert quiet["changed"] is False


def test_check_mode_reports_the_install_and_touches_nothing(tmp_path, comfyui_upstream, pod_venv, pip_args):
    dest = tmp_path / "vault" / "ComfyUI"
    result, dummy = install(dest, comfyui_upstream, pod_venv, pip_args, check=True, diff=True)
    assert result["changed"] and result["status"] == "cloned", result
    assert result["requirements"]["status"] == "unknown"  # nothing to read before the clone
    assert not dest.parent.exists()
    assert "fakedep" not in installed_versions(pod_venv)


def test_seed_from_the_baked_copy_needs_no_network_and_no_pip(tmp_path, comfyui_upstream, pod_venv, pip_args):
    baked = tmp_path / "opt" / "ComfyUI"
    baked_run, dummy = install(baked, comfyui_upstream, pod_venv, pip_args)
    assert baked_run["status"] == "cloned", baked_run
    url, head = comfyui_upstream.url, comfyui_upstream.head()
    shutil.rmtree(comfyui_upstream.path)  # upstream is gone: only a local copy can work now
    marker = trap_pip(pod_venv)

    dest = tmp_path / "vault" / "ComfyUI"
    preview, dummy = install(dest, url, pod_venv, pip_args, seed_from=str(baked), check=True)
    assert preview["status"] == "seeded" and preview["requirements"]["status"] == "unchanged", preview
    assert not dest.exists()
    seeded, dummy = install(dest, url, pod_venv, pip_args, seed_from=str(baked))
    assert seeded["changed"] and seeded["status"] == "seeded", seeded
    assert seeded["source"] == str(baked) and seeded["commit"] == head
    assert seeded["requirements"]["status"] == "unchanged" and not marker.exists()
    assert git(dest, "remote", "get-url", "origin") == url
    assert git(dest, "status", "--porcelain") == ""
    again, dummy = install(dest, url, pod_venv, pip_args, seed_from=str(baked))
    assert again["changed"] is False and again["status"] == "present"


def test_broken_checkout_is_replaced_and_every_user_byte_survives(tmp_path, comfyui_upstream):
    vault = tmp_path / "vault"
    dest = vault / "ComfyUI"
    assert install(dest, comfyui_upstream)[0]["status"] == "cloned"
    user_content = {
        "output/ComfyUI_00001_.png": b"render",
        "input/example.png": b"the user's own example",  # clashes with a tracked file
        "user/default/workflows/mine.json": b'{"nodes": []}',
        "custom_nodes/MyNode/__init__.py": b"NODE_CLASS_MAPPINGS = {}\n",
        "extra_model_paths.yaml": b"a: b\n",
        "models/loras/mine.safetensors": b"lora",
    }
    for rel, data in user_content.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    # The workspace role's link: ComfyUI/models -> vault/models (its files live in the vault).
    (vault / "models" / "checkpoints").mkdir(parents=True)
    (vault / "models" / "checkpoints" / "big.safetensors").write_bytes(b"model")
    os.rename(dest / "models", vault / "models-from-comfyui")
    os.symlink(vault / "models", dest / "models")
    # Broken: main.py deleted and git metadata gone.
    (dest / "main.py").unlink()
    shutil.rmtree(dest / ".git")
    before = snapshot(dest)

    result, dummy = install(dest, comfyui_upstream)
    assert result["changed"] and result["status"] == "repaired", result
    assert result["reason"] == "main.py is missing"
    assert (dest / "main.py").is_file() and git(dest, "rev-parse", "HEAD") == comfyui_upstream.head()
    backup = result["backup"]
    assert backup and backup.startswith(f"{dest}.broken-")
    assert sorted(result["left_in_backup"]) == [f"{backup}/input/example.png", f"{backup}/models"]
    for rel, data in before.items():
        here = dest / rel
        kept = os.path.join(backup, rel)
        found = [p for p in (here, kept) if os.path.lexists(p) and snapshot_one(p) == data]
        assert found, f"{rel} was lost"
    assert (dest / "input" / "example.png").read_bytes() != user_content["input/example.png"]
    assert open(os.path.join(backup, "input", "example.png"), "rb").read() == user_content["input/example.png"]
    assert (vault / "models" / "checkpoints" / "big.safetensors").read_bytes() == b"model"
    assert install(dest, comfyui_upstream)[0]["changed"] is False


def snapshot_one(path):
    if os.path.islink(path):
        return f"link:{os.readlink(path)}".encode()
    return open(path, "rb").read() if os.path.isfile(path) else None


def test_healthy_checkout_is_left_alone_and_a_wrong_remote_is_corrected(tmp_path, comfyui_upstream):
    dest = tmp_path / "vault" / "ComfyUI"
    install(dest, comfyui_upstream)
    comfyui_upstream.commit({"comfy/new.py": "x = 1\n"}, "upstream moves on")
    with open(dest / "main.py", "a", encoding="utf-8") as handle:
        handle.write("# the user's patch\n")
    shutil.rmtree(dest / "models")
    os.symlink(tmp_path / "vault" / "models", dest / "models")
    git(dest, "remote", "set-url", "origin", "https://example.invalid/fork.git")
    head = git(dest, "rev-parse", "HEAD")

    fixed, dummy = install(dest, comfyui_upstream, diff=True)
    assert fixed["changed"] and fixed["status"] == "remote_fixed", fixed
    assert fixed["previous_remote"] == "https://example.invalid/fork.git"
    assert git(dest, "remote", "get-url", "origin") == comfyui_upstream.url
    assert git(dest, "rev-parse", "HEAD") == head  # not moved to the new upstream commit
    assert (dest / "main.py").read_text().endswith("# the user's patch\n")
    assert os.path.islink(dest / "models")
    assert install(dest, comfyui_upstream)[0]["changed"] is False


def test_version_branch_tag_and_commit(tmp_path, comfyui_upstream):
    first = comfyui_upstream.head()
    comfyui_upstream.tag("v1.0")
    comfyui_upstream.branch("stable")
    second = comfyui_upstream.commit({"comfy/v2.py": ""}, "v2")
    assert second != first
    cases = {"v1.0": first, first[:10]: first, "stable": first}
    for index, (version, expected) in enumerate(cases.items()):
        dest = tmp_path / f"c{index}" / "ComfyUI"
        result, dummy = install(dest, comfyui_upstream, version=version)
        assert result["commit"] == expected, (version, result)
    assert git(tmp_path / "c2" / "ComfyUI", "rev-parse", "--abbrev-ref", "HEAD") == "stable"
    missing, dummy = install(tmp_path / "c9" / "ComfyUI", comfyui_upstream, version="no-such-branch")
    assert missing.get("failed") and "no-such-branch" in missing["msg"]
    assert not (tmp_path / "c9" / "ComfyUI").exists()
    assert not list((tmp_path / "c9").iterdir())


def test_credentials_in_the_url_never_show(tmp_path):
    secret = "ghp_s3cr3tT0ken"
    result, proc = install(tmp_path / "ComfyUI", f"http://user:{secret}@127.0.0.1:9/ComfyUI.git")
    assert result.get("failed") and "cannot clone ComfyUI" in result["msg"]
    # The echo of the arguments too: the module has ansible mask the token everywhere.
    assert result["invocation"]["module_args"]["repo_url"].startswith("http://user:")
    assert secret not in json.dumps(result) and secret not in proc.stdout + proc.stderr


def test_role_seeds_then_restart_is_changed_0(tmp_path, comfyui_upstream, pod_venv, pip_args):
    baked = tmp_path / "opt" / "ComfyUI"
    vault = tmp_path / "workspace" / "aiclipse"
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: aiclipse.comfyui.comfyui\n")
    common = {
        "comfyui_repo_url": comfyui_upstream.url,
        "comfyui_venv": str(pod_venv),
        "comfyui_pip_args": pip_args,
        "comfyui_protected_packages": ["faketorch"],
        "comfyui_baked_dir": str(baked),
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
    }
    bake = run_playbook(playbook, {**common, "comfyui_dir": str(baked)}, inventory="localhost,", args=["-c", "local"])
    assert bake.rc == 0 and bake.changed >= 1, bake.stdout + bake.stderr
    boot = run_playbook(
        playbook, {**common, "aiclipse_vault": str(vault)}, inventory="localhost,", args=["-c", "local"]
    )
    assert boot.rc == 0 and boot.changed == 1, boot.stdout + boot.stderr
    assert (vault / "ComfyUI" / "main.py").is_file()
    restart = run_playbook(
        playbook, {**common, "aiclipse_vault": str(vault)}, inventory="localhost,", args=["-c", "local"]
    )
    assert restart.rc == 0 and restart.changed == 0, restart.stdout
    # The fake main.py of the installed copy runs and records its argv.
    argv_file = tmp_path / "argv.json"
    subprocess.run(
        [str(pod_venv / "bin" / "python"), "main.py", "--listen", "0.0.0.0"],
        check=True,
        cwd=vault / "ComfyUI",
        env={**os.environ, "FAKE_COMFYUI_ARGV_FILE": str(argv_file)},
    )
    assert json.loads(argv_file.read_text())["argv"] == ["--listen", "0.0.0.0"]


# Credentials and time on real git servers (loopback) -----------------------------------------

TOKEN = "ghp_c0mfyT0kenInTheURL"


def files_holding(root, *needles):
    found = []
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {needle}" for needle in needles if needle.encode() in data]
    return found


def test_a_token_in_comfyuis_url_never_reaches_argv_or_a_file(tmp_path, comfyui_upstream):
    served = tmp_path / "served"
    publish(comfyui_upstream, served)
    basic = base64.b64encode(f"user:{TOKEN}".encode()).decode()
    dest = tmp_path / "vault" / "ComfyUI"
    with SmartHttpGit(served, user="user", password=TOKEN, delay=0.2) as server:
        url = server.url("ComfyUI.git", auth=True)
        # As the role passes it (COMFYUI_REPO): through the environment, not ansible's argv.
        args = {"dest": str(dest), "repo_url": "{{ lookup('ansible.builtin.env', 'TEST_COMFYUI_REPO') }}"}
        with ArgvSampler() as seen:
            result, proc = run_module("comfyui_install", args, env={"TEST_COMFYUI_REPO": url})
        assert result["status"] == "cloned" and result["commit"] == comfyui_upstream.head(), result
        # Installed again from the same URL: nothing to change (origin holds the URL without it).
        again, dummy = install(dest, url)
    clone_lines = seen.matching(f"127.0.0.1:{server.port}")
    assert any(" clone " in line for line in clone_lines), (seen.samples, clone_lines)
    assert not [line for line in seen.lines if TOKEN in line or basic in line]
    assert not files_holding(dest, TOKEN, basic)
    assert git(dest, "remote", "get-url", "origin") == server.url("ComfyUI.git")
    assert TOKEN not in proc.stdout + proc.stderr + json.dumps(result)
    assert again["changed"] is False, again
    # The token did reach the server (git's credential helper answered its 401s).
    assert [r for r in server.requests if r["authorized"] and r["method"] == "POST"]


def test_a_token_stored_in_origin_is_removed_and_nothing_else_changes(tmp_path, comfyui_upstream):
    served = tmp_path / "served"
    publish(comfyui_upstream, served)
    with SmartHttpGit(served, user="user", password=TOKEN) as server:
        url = server.url("ComfyUI.git", auth=True)
        # A checkout made the old way (token on git's command line, then in .git/config) ...
        dest = tmp_path / "vault" / "ComfyUI"
        dest.parent.mkdir()
        subprocess.run(
            ["git", "clone", "-q", url, str(dest)], check=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        )
        # ... and a baked copy in the image made the same way, which a new vault is seeded from.
        baked = tmp_path / "opt" / "ComfyUI"
        shutil.copytree(dest, baked, symlinks=True)
        assert files_holding(dest, TOKEN)
        (dest / "main.py").write_text((dest / "main.py").read_text() + "# the user's patch\n")
        before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
        config = dest / ".git" / "config"
        config_before = config.read_text()

        fixed, proc = install(dest, url, diff=True)
        assert fixed["changed"] and fixed["status"] == "remote_fixed", fixed
        assert "held credentials" in fixed["reason"] and TOKEN not in proc.stdout + proc.stderr
        assert not files_holding(dest, TOKEN)
        assert config.read_text() == config_before.replace(f"user:{TOKEN}@", "")
        after = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
        assert {p: d for p, d in after.items() if p != config} == {p: d for p, d in before.items() if p != config}
        assert install(dest, url)[0]["changed"] is False

        seeded_dest = tmp_path / "vault2" / "ComfyUI"
        seeded, dummy = install(seeded_dest, url, seed_from=str(baked))
        assert seeded["status"] == "seeded", seeded
        assert not files_holding(seeded_dest, TOKEN)
        assert git(seeded_dest, "remote", "get-url", "origin") == server.url("ComfyUI.git")


def test_a_stalled_comfyui_clone_fails_in_time_and_leaves_nothing(tmp_path):
    dest = tmp_path / "vault" / "ComfyUI"
    with SilentServer() as silent:
        started = time.monotonic()
        result, dummy = install(dest, silent.url("ComfyUI.git"), git_timeout=3)
        elapsed = time.monotonic() - started
        assert result.get("failed"), result
        assert f"no answer from 127.0.0.1:{silent.port} within 3 s" in result["msg"], result["msg"]
        assert silent.connections >= 1
        assert running(f"127.0.0.1:{silent.port}") == []
    assert elapsed < 60  # a hang detector: the server never answers
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_a_password_in_an_ssh_url_is_refused(tmp_path):
    result, proc = install(tmp_path / "ComfyUI", "ssh://git:hunter2secret@127.0.0.1:9/ComfyUI.git")
    assert result.get("failed") and "a password in a ssh:// URL" in result["msg"], result
    assert "hunter2secret" not in proc.stdout + proc.stderr
    assert not (tmp_path / "ComfyUI").exists()


def test_a_pinned_install_is_on_a_branch_that_git_pull_moves_forward(tmp_path, comfyui_upstream):
    pinned = comfyui_upstream.head()
    comfyui_upstream.tag("v1.0")
    latest = comfyui_upstream.commit({"comfy/v2.py": ""}, "v2")
    for index, version in enumerate(("v1.0", pinned[:12], pinned)):
        dest = tmp_path / f"c{index}" / "ComfyUI"
        result, dummy = install(dest, comfyui_upstream, version=version)
        assert result["commit"] == pinned and result["branch"] == "master", (version, result)
        # The pin is where the branch starts; it follows origin's default branch from there.
        assert git(dest, "rev-parse", "HEAD") == pinned
        assert git(dest, "rev-parse", "--abbrev-ref", "master@{upstream}") == "origin/master"
        assert git(dest, "status", "--porcelain") == ""
    pull = subprocess.run(
        ["git", "-C", str(dest), "pull", "-q", "--ff-only"], capture_output=True, text=True, check=False
    )
    assert pull.returncode == 0, pull.stderr
    assert git(dest, "rev-parse", "HEAD") == latest


def test_a_detached_checkout_is_put_on_its_branch_without_moving(tmp_path, comfyui_upstream):
    first = comfyui_upstream.head()
    comfyui_upstream.commit({"comfy/v2.py": ""}, "v2")
    dest = tmp_path / "vault" / "ComfyUI"
    install(dest, comfyui_upstream)
    # What the older code left for a pinned COMFYUI_VERSION: a detached HEAD, no local master.
    git(dest, "checkout", "-q", "--detach", first)
    git(dest, "branch", "-q", "-D", "master")
    preview, dummy = install(dest, comfyui_upstream, check=True)
    assert preview["changed"] and preview["status"] == "attached"
    assert git(dest, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"
    result, dummy = install(dest, comfyui_upstream)
    assert result["changed"] and result["status"] == "attached" and result["attached"] == "master", result
    assert git(dest, "rev-parse", "--abbrev-ref", "HEAD") == "master"
    assert git(dest, "rev-parse", "HEAD") == first, "attaching moved the checkout"
    assert install(dest, comfyui_upstream)[0]["changed"] is False

    # A local master elsewhere is the user's: HEAD stays detached and the result says why.
    git(dest, "checkout", "-q", "--detach", first)
    git(dest, "branch", "-q", "-f", "master", "origin/master")
    kept, dummy = install(dest, comfyui_upstream)
    assert kept["changed"] is False and "already exists at another commit" in kept["detached"]
    assert git(dest, "rev-parse", "master") == comfyui_upstream.head()


def test_offline_requirements_come_from_the_wheelhouse_and_a_miss_is_only_a_warning(
    tmp_path, comfyui_upstream, pod_venv, wheelhouse
):
    wheelhouse = shutil.copytree(wheelhouse, tmp_path / "wheels")  # this test adds a wheel
    dest = tmp_path / "vault" / "ComfyUI"
    offline = {"wheelhouse": str(wheelhouse), "offline": True, "requirements_fail_on_error": False}
    first, dummy = install(dest, comfyui_upstream, pod_venv, **offline)
    assert first["requirements"]["status"] == "installed", first
    assert installed_versions(pod_venv)["fakedep"] == "1.0"

    # An update asks for a version no wheel provides and there is no index: a warning, the run
    # goes on, nothing is recorded so the next start tries again.
    (dest / "requirements.txt").write_text("fakedep==3.0\nfaketorch\n")
    missed, proc = install(dest, comfyui_upstream, pod_venv, **offline)
    assert not missed.get("failed"), missed
    assert missed["requirements"]["status"] == "failed"
    assert "fakedep==3.0" in missed["requirements"]["error"] and "--no-index" in missed["requirements"]["error"]
    assert any("ComfyUI starts with what the venv has" in w for w in missed["warnings"])
    assert installed_versions(pod_venv)["fakedep"] == "1.0"
    assert install(dest, comfyui_upstream, pod_venv, **offline)[0]["requirements"]["status"] == "failed"

    # The wheel arrives in the wheelhouse: the next start installs it.
    make_wheel(wheelhouse, "fakedep", "3.0")
    fixed, dummy = install(dest, comfyui_upstream, pod_venv, **offline)
    assert fixed["requirements"]["status"] == "installed"
    assert installed_versions(pod_venv)["fakedep"] == "3.0"

    # Without the switch the miss fails the task (bake: a broken image must not ship).
    (dest / "requirements.txt").write_text("fakedep==4.0\n")
    strict, dummy = install(dest, comfyui_upstream, pod_venv, wheelhouse=str(wheelhouse), offline=True)
    assert strict.get("failed") and "fakedep==4.0" in strict["msg"]


# A password with a raw '@': the user info ends at the last '@', so all of it is kept out.
@pytest.mark.parametrize("password", [TOKEN, "left@RIGHT" + TOKEN], ids=["token", "raw-at"])
def test_a_token_in_comfyui_repo_never_rests_in_ansibles_module_files(tmp_path, comfyui_upstream, password):
    """COMFYUI_REPO with a token, through the role: ansible writes every module's arguments to a
    temporary file (AnsiballZ, not 0600); kept here (ANSIBLE_KEEP_REMOTE_FILES) and searched."""
    from harness.secret_scan import files_holding as secret_files

    served = tmp_path / "served"
    publish(comfyui_upstream, served)
    vault = tmp_path / "workspace" / "aiclipse"
    remote_tmp = tmp_path / "remote-tmp"
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: aiclipse.comfyui.comfyui\n")
    with SmartHttpGit(served, user="user", password=password) as server:
        env = {
            # As a user pastes it: a raw '@' stays raw.
            "COMFYUI_REPO": server.url("ComfyUI.git", user="user", password=password),
            "ANSIBLE_KEEP_REMOTE_FILES": "1",
            "ANSIBLE_REMOTE_TMP": str(remote_tmp),
        }
        extra_vars = {
            "aiclipse_vault": str(vault),
            "comfyui_install_requirements": False,
            "comfyui_env_file": str(tmp_path / "absent-env-file"),
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        }
        run = run_playbook(playbook, extra_vars, inventory="localhost,", args=["-c", "local", "-vvv"], env=env)
        assert run.rc == 0 and run.changed == 1, run.stdout[-3000:] + run.stderr[-2000:]
        assert [r for r in server.requests if r["authorized"]], "the token never reached the server"
        again = run_playbook(playbook, extra_vars, inventory="localhost,", args=["-c", "local"], env=env)
        assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]
    assert (vault / "ComfyUI" / "main.py").is_file()
    assert git(vault / "ComfyUI", "remote", "get-url", "origin") == server.url("ComfyUI.git")
    assert list(remote_tmp.rglob("AnsiballZ_comfyui_install.py")), "no module file was kept to search"
    assert secret_files([TOKEN], [remote_tmp, vault]) == []
    assert TOKEN not in run.stdout + run.stderr
