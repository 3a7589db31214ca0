"""custom_nodes module and role against local node repos and a real venv (no internet).

A stand-in torch (faketorch 2.0) is installed in the venv; a node asking for faketorch==1.0
must fail without replacing it, while the other nodes still install.
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
from harness.git_repos import git, make_comfyui_repo, make_node_repo
from harness.git_servers import GitDaemon, RedirectingServer, SilentServer, SmartHttpGit, publish, refresh
from harness.paths import REPO, VENV_BIN
from harness.processes import ArgvSampler, running
from harness.python_env import installed_versions, make_venv, make_wheel
from harness.site_pod import site_vars
from harness.workflows import ui_node, ui_workflow

SECRET = "ghp_n0deT0kenS3cret"
SECRET_AS_USER = "ghp_n0deT0kenAsTheUserName0123"


def nodes_run(dest, venv=None, pip_args=(), check=False, diff=False, env=None, verbosity=0, **extra):
    args = {"dest": str(dest), "protected_packages": ["faketorch"], **extra}
    if venv is not None:
        args.update(venv=str(venv), pip_args=list(pip_args))
    return run_module("custom_nodes", args, check=check, diff=diff, env=env, verbosity=verbosity)


def by_name(result):
    return {r["name"]: r for r in result["results"]}


def no_staging_left(dest):
    return not [p for p in os.listdir(dest) if (p.startswith(".aiclipse") and "staging" in p)]


def test_failing_nodes_are_reported_and_do_not_stop_the_others(tmp_path, pod_venv, pip_args):
    src = tmp_path / "src"
    good = make_node_repo(src / "NodeGood", requirements=["fakedep==1.0"])
    greedy = make_node_repo(src / "NodeWantsOldTorch", requirements=["faketorch==1.0"])
    manifest = tmp_path / "nodes.txt"
    manifest.write_text(
        "# test template\n"
        f"{greedy.url}|main|x|asks for another torch\n"
        f"{good.url}|main|x|fine\n"
        "file:///nonexistent/NodeMissing|main|x|no such repo\n"
        f"http://user:{SECRET}@127.0.0.1:9/NodePrivate.git|main|x|unreachable, token in URL\n"
    )
    dest = tmp_path / "ComfyUI" / "custom_nodes"
    result, proc = nodes_run(dest, pod_venv, pip_args, manifests=[str(manifest)])

    assert result.get("failed") and result["msg"].startswith("3 of 4 custom nodes failed"), result
    nodes = by_name(result)
    assert nodes["NodeGood"]["status"] == "cloned" and nodes["NodeGood"]["requirements"] == "installed"
    old_torch = nodes["NodeWantsOldTorch"]
    assert old_torch["status"] == "failed" and old_torch["requirements"] == "failed"
    assert "faketorch==1.0" in old_torch["reason"] and old_torch["origin"] == f"{manifest}:2"
    assert nodes["NodeMissing"]["status"] == "failed" and "git clone failed" in nodes["NodeMissing"]["reason"]
    assert nodes["NodePrivate"]["status"] == "failed"
    assert f"{manifest}:5" in result["msg"]
    versions = installed_versions(pod_venv)
    assert versions["faketorch"] == "2.0", "a node replaced the pod's torch"
    assert versions["fakedep"] == "1.0"
    assert SECRET not in proc.stdout + proc.stderr
    assert sorted(os.listdir(dest)) == ["NodeGood", "NodeWantsOldTorch"]

    # A token in the nodes option's URL is masked in the echo of the arguments as well.
    given = f"http://{SECRET_AS_USER}@127.0.0.1:9/NodeGiven.git|main|x|token as the user name"
    result, proc = nodes_run(dest, pod_venv, pip_args, nodes=[given])
    assert result.get("failed") and result["invocation"]["module_args"]["nodes"]
    assert SECRET_AS_USER not in proc.stdout + proc.stderr

    # At pod start the role sets fail_on_error=false: the same failures become warnings.
    lenient, proc = nodes_run(dest, pod_venv, pip_args, manifests=[str(manifest)], fail_on_error=False)
    assert not lenient.get("failed"), lenient
    assert lenient["counts"] == {"cloned": 0, "seeded": 0, "updated": 0, "present": 1, "failed": 3}
    warned = " ".join(lenient.get("warnings", []))
    assert "NodeWantsOldTorch" in warned and "NodeMissing" in warned and "FAILED" in warned
    assert SECRET not in proc.stdout + proc.stderr


def test_parallel_clones_pins_and_a_restart_that_changes_nothing(tmp_path, pod_venv, pip_args):
    src = tmp_path / "src"
    repos = [make_node_repo(src / f"Node{i}", requirements=["fakedep==1.0"] if i == 0 else None) for i in range(6)]
    pinned = repos[1].head()
    repos[1].commit({"later.py": ""}, "a later commit the pin must not get")
    branchy = repos[2]
    branchy.branch("dev")
    dev_head = branchy.head("dev")
    branchy.commit({"main-only.py": ""}, "main moves on")
    manifest = tmp_path / "nodes.txt"
    manifest.write_text(
        f"{repos[0].url}|main|u|reqs\n{repos[1].url}|main|u|pinned|{pinned[:12]}\n{branchy.url}|dev|u|a branch\n"
    )
    # A git that takes 1.5 s per clone and logs when each one ran.
    log = tmp_path / "clones.log"
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    wrapper.write_text(
        '#!/bin/sh\ncase " $* " in *" clone "*)\n'
        f'  start=$(date +%s.%N); sleep 1.5; echo "$start $(date +%s.%N)" >> {log};;\n'
        'esac\nexec /usr/bin/git "$@"\n'
    )
    wrapper.chmod(0o755)
    slow_git = {"PATH": f"{wrapper.parent}:{VENV_BIN}:{os.environ['PATH']}"}
    dest = tmp_path / "custom_nodes"
    extra = {"manifests": [str(manifest)], "nodes": [{"url": r.url} for r in repos[3:]] + [repos[2].url + "|dev"]}

    first, dummy = nodes_run(dest, pod_venv, pip_args, env=slow_git, diff=True, **extra)
    assert first["changed"] and not first.get("failed"), first
    assert first["counts"] == {"cloned": 6, "seeded": 0, "updated": 0, "present": 0, "failed": 0}
    spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
    assert len(spans) == 6
    most_at_once = max(sum(1 for s, e in spans if s <= start < e) for start, dummy in spans)
    assert most_at_once >= 4, f"clones ran one after another: {spans}"
    nodes = by_name(first)
    assert nodes["Node1"]["commit"] == pinned == git(dest / "Node1", "rev-parse", "HEAD")
    assert nodes["Node2"]["commit"] == dev_head and nodes["Node2"]["origin"] == "nodes[3]"
    assert nodes["Node0"]["requirements"] == "installed" and nodes["Node3"]["requirements"] == "none"
    assert "Node0: absent" in first["diff"]["before"] and f"Node1: {pinned}" in first["diff"]["after"]
    assert installed_versions(pod_venv)["fakedep"] == "1.0"
    assert no_staging_left(dest)

    marker = trap_pip(pod_venv)
    again, dummy = nodes_run(dest, pod_venv, pip_args, **extra)
    assert again["changed"] is False and again["counts"]["present"] == 6, again
    assert by_name(again)["Node0"]["requirements"] == "unchanged"
    assert not marker.exists(), "pip ran although no requirements changed"

    newcomer = make_node_repo(src / "NodeNew", requirements=["fakedep==2.0"])
    extra["nodes"].append({"url": newcomer.url})
    check, dummy = nodes_run(dest, pod_venv, pip_args, check=True, diff=True, **extra)
    assert check["changed"] and by_name(check)["NodeNew"]["status"] == "would_clone"
    assert "NodeNew: absent" in check["diff"]["before"]
    assert not (dest / "NodeNew").exists() and not marker.exists()


def test_nodes_baked_into_the_image_are_copied_not_cloned(tmp_path, pod_venv, pip_args):
    src = tmp_path / "src"
    with_reqs = make_node_repo(src / "NodeReqs", requirements=["fakedep==1.0"])
    pinned = make_node_repo(src / "NodePinned")
    pin = pinned.head()
    pinned.commit({"v2.py": ""}, "v2")
    elsewhere = make_node_repo(src / "NodeDev")
    elsewhere.branch("dev")
    # A release tag in the branch field (a workflow's registry version becomes one too): the
    # baked clone is detached at the tag, and that still stands in for a clone of the tag.
    tagged = make_node_repo(src / "NodeTagged")
    release = tagged.head()
    tagged.tag("v1.2.0")
    tagged.commit({"after_release.py": ""}, "after the release")
    nodes = [with_reqs.url, f"{pinned.url}||||{pin}", elsewhere.url, f"{tagged.url}|v1.2.0"]
    baked = tmp_path / "opt" / "ComfyUI" / "custom_nodes"
    bake, dummy = nodes_run(baked, pod_venv, pip_args, nodes=nodes)
    assert bake["counts"]["cloned"] == 4, bake
    # The pod wants NodeDev on another branch than the baked one: that one must be cloned.
    nodes[2] = f"{elsewhere.url}|dev"
    shutil.rmtree(src / "NodeReqs")
    shutil.rmtree(src / "NodePinned")
    shutil.rmtree(src / "NodeTagged")
    marker = trap_pip(pod_venv)

    vault = tmp_path / "vault" / "ComfyUI" / "custom_nodes"
    boot, dummy = nodes_run(vault, pod_venv, pip_args, nodes=nodes, seed_from=str(baked))
    assert not boot.get("failed"), boot
    results = by_name(boot)
    assert [results[n]["status"] for n in ("NodeReqs", "NodePinned", "NodeDev", "NodeTagged")] == [
        "seeded",
        "seeded",
        "cloned",
        "seeded",
    ]
    assert results["NodePinned"]["commit"] == pin and results["NodeReqs"]["requirements"] == "unchanged"
    assert results["NodeTagged"]["commit"] == release
    assert git(vault / "NodeDev", "rev-parse", "--abbrev-ref", "HEAD") == "dev"
    assert not marker.exists() and no_staging_left(vault)
    again, dummy = nodes_run(vault, pod_venv, pip_args, nodes=nodes, seed_from=str(baked))
    assert again["changed"] is False and again["counts"]["present"] == 4


def test_existing_checkouts_are_never_clobbered(tmp_path):
    src = tmp_path / "src"
    dirty = make_node_repo(src / "NodeDirty")
    clean = make_node_repo(src / "NodeClean")
    follower = make_node_repo(src / "NodeFollower")
    dest = tmp_path / "custom_nodes"
    manual = dest / "HandCopied"
    manual.mkdir(parents=True)
    (manual / "__init__.py").write_text("# copied by hand\n")
    installed, dummy = nodes_run(dest, nodes=[dirty.url, clean.url, follower.url, "file:///x/HandCopied"])
    assert [r["status"] for r in installed["results"]] == ["cloned", "cloned", "cloned", "present"]
    assert "not a git checkout" in installed["results"][3]["reason"]

    dirty_pin = dirty.commit({"__init__.py": "# v2\n"}, "v2")
    clean_pin = clean.commit({"extra.py": ""}, "v2")
    follower_head = follower.commit({"extra.py": ""}, "v2")
    (dest / "NodeDirty" / "__init__.py").write_text("# the user's fix\n")
    nodes = [f"{dirty.url}||||{dirty_pin}", f"{clean.url}||||{clean_pin}", follower.url, "file:///x/HandCopied"]
    second, dummy = nodes_run(dest, nodes=nodes, update=True)
    results = by_name(second)
    assert results["NodeDirty"]["status"] == "present" and "local changes kept" in results["NodeDirty"]["reason"]
    assert (dest / "NodeDirty" / "__init__.py").read_text() == "# the user's fix\n"
    assert git(dest / "NodeDirty", "rev-parse", "HEAD") != dirty_pin
    assert results["NodeClean"]["status"] == "updated" and results["NodeClean"]["commit"] == clean_pin
    assert results["NodeFollower"]["status"] == "updated" and results["NodeFollower"]["commit"] == follower_head
    assert git(dest / "NodeFollower", "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert (manual / "__init__.py").read_text() == "# copied by hand\n"
    assert second["changed"] and not second.get("failed")
    third, dummy = nodes_run(dest, nodes=nodes, update=True)
    assert third["changed"] is False, third


def test_a_bad_manifest_line_fails_before_anything_is_cloned(tmp_path):
    good = make_node_repo(tmp_path / "src" / "NodeA")
    manifest = tmp_path / "nodes.txt"
    manifest.write_text(f"{good.url}|main|x|ok\n{good.url.replace('NodeA', 'NodeB')}|main|x|bad pin|nothex!\n")
    result, dummy = nodes_run(tmp_path / "custom_nodes", manifests=[str(manifest)])
    assert result.get("failed")
    assert result["msg"].startswith(f"nodes manifest: {manifest}:2: commit pin 'nothex!'")
    assert not (tmp_path / "custom_nodes").exists()


def test_role_reads_base_user_and_template_manifests(tmp_path, pod_venv, pip_args):
    src = tmp_path / "src"
    base_node = make_node_repo(src / "NodeBase", requirements=["fakedep==1.0"])
    user_node = make_node_repo(src / "NodeUser")
    template_node = make_node_repo(src / "NodeTemplate")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "base_nodes.txt").write_text(f"{base_node.url}|main|u|base\n")
    (manifests / "tmpl_nodes.txt").write_text(f"{template_node.url}|main|u|template\n")
    vault = tmp_path / "workspace" / "aiclipse"
    vault.mkdir(parents=True)
    (vault / "custom_nodes.txt").write_text(f"{user_node.url}\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: aiclipse.comfyui.custom_nodes\n"
    )
    extra_vars = {
        "aiclipse_vault": str(vault),
        "custom_nodes_manifests_dir": str(manifests),
        "custom_nodes_venv": str(pod_venv),
        "custom_nodes_pip_args": pip_args,
        "custom_nodes_protected_packages": ["faketorch"],
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
    }
    env = {"TEMPLATE_TYPE": "tmpl"}
    first = run_playbook(playbook, extra_vars, inventory="localhost,", env=env, args=["-c", "local"])
    assert first.rc == 0 and first.changed == 1, first.stdout + first.stderr
    assert sorted(os.listdir(vault / "custom_nodes")) == ["NodeBase", "NodeTemplate", "NodeUser"]
    assert installed_versions(pod_venv)["fakedep"] == "1.0"
    again = run_playbook(playbook, extra_vars, inventory="localhost,", env=env, args=["-c", "local"])
    assert again.rc == 0 and again.changed == 0, again.stdout


# Git servers on loopback: tokens, stalls, pins ----------------------------------------------


def files_holding(root, *needles):
    """Files under root (checkouts, .git included) whose bytes hold any of the needles."""
    found = []
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {needle}" for needle in needles if needle.encode() in data]
    return found


def test_a_token_in_a_node_url_never_reaches_argv_or_a_file(tmp_path):
    src, served = tmp_path / "src", tmp_path / "served"
    first = make_node_repo(src / "NodePrivate")
    pinned = make_node_repo(src / "NodePinned")
    as_user = make_node_repo(src / "NodeTokenAsUser")
    old_pin = pinned.head()
    for repo in (first, pinned, as_user):
        publish(repo, served)
    basic = base64.b64encode(f"user:{SECRET}".encode()).decode()
    dest = tmp_path / "custom_nodes"
    # Every answer is held back a little, so the clones and fetches last long enough for ps.
    with SmartHttpGit(served, user="user", password=SECRET, delay=0.2) as server, SmartHttpGit(
        served, user=SECRET_AS_USER
    ) as github_style:
        manifest = tmp_path / "nodes.txt"
        manifest.write_text(
            f"{server.url('NodePrivate.git', auth=True)}|main|x|private\n"
            f"{server.url('NodePinned.git', auth=True)}|main|x|pinned|{old_pin}\n"
            f"{github_style.url('NodeTokenAsUser.git', auth=True)}|main|x|https://<token>@host/\n"
        )
        with ArgvSampler() as seen:
            cloned, proc = nodes_run(dest, manifests=[str(manifest)])
            assert cloned["counts"]["cloned"] == 3, cloned
            # Then fetches: a fast-forward and a pin that is not in the checkout yet.
            first.commit({"v2.py": ""}, "v2")
            refresh(served, "NodePrivate.git", first)
            new_pin = pinned.commit({"v2.py": ""}, "v2")
            refresh(served, "NodePinned.git", pinned)
            manifest.write_text(manifest.read_text().replace(old_pin, new_pin))
            fetched, proc2 = nodes_run(dest, manifests=[str(manifest)], update=True)
        # The server refuses git without the token.
        anonymous = subprocess.run(
            ["git", "ls-remote", server.url("NodePrivate.git")],
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            check=False,
        )
        assert anonymous.returncode != 0 and not server.requests[-1]["authorized"]
    git_lines = seen.matching(f"127.0.0.1:{server.port}")
    assert any(" clone " in f" {line} " for line in git_lines), (seen.samples, git_lines)
    assert seen.matching("fetch -q origin"), git_lines
    assert any("git-remote-http origin" in line for line in git_lines), git_lines
    leaked = [line for line in seen.lines if SECRET in line or basic in line or SECRET_AS_USER in line]
    assert not leaked, leaked
    assert not files_holding(dest, SECRET, basic, SECRET_AS_USER)
    assert git(dest / "NodeTokenAsUser", "remote", "get-url", "origin") == github_style.url("NodeTokenAsUser.git")
    for name in ("NodePrivate", "NodePinned"):
        assert git(dest / name, "remote", "get-url", "origin") == server.url(f"{name}.git")
    for output in (proc.stdout + proc.stderr, proc2.stdout + proc2.stderr):
        assert SECRET not in output and basic not in output and SECRET_AS_USER not in output
    results = by_name(fetched)
    assert results["NodePrivate"]["status"] == "updated" and results["NodePrivate"]["commit"] == first.head()
    assert results["NodePinned"]["status"] == "updated" and results["NodePinned"]["commit"] == new_pin
    # The token did reach the server (git's credential helper answered its 401s).
    assert [r for r in server.requests if r["authorized"] and r["method"] == "POST"]


def test_a_token_git_stored_in_a_checkout_earlier_is_removed_at_the_next_start(tmp_path):
    src, served = tmp_path / "src", tmp_path / "served"
    node = make_node_repo(src / "NodeOld", extra_files={"config.py": "x = 1\n"})
    publish(node, served)
    dest = tmp_path / "custom_nodes"
    dest.mkdir()
    with SmartHttpGit(served, user="user", password=SECRET) as server:
        url = server.url("NodeOld.git", auth=True)
        # What earlier versions did: the URL, token and all, on git's command line.
        subprocess.run(
            ["git", "clone", "-q", url, str(dest / "NodeOld")],
            check=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        assert files_holding(dest, SECRET), "the old way stores the token (the test needs it to)"
        (dest / "NodeOld" / "config.py").write_text("x = 2  # the user's edit\n")
        before = {p: p.read_bytes() for p in (dest / "NodeOld").rglob("*") if p.is_file()}
        config_before = (dest / "NodeOld" / ".git" / "config").read_text()

        check, dummy = nodes_run(dest, nodes=[url], check=True)
        assert check["changed"] and check["results"][0]["credentials_removed"], check
        assert files_holding(dest, SECRET), "check mode changed the checkout"

        cleaned, proc = nodes_run(dest, nodes=[url], diff=True)
        assert cleaned["changed"] and cleaned["results"][0]["credentials_removed"], cleaned
        assert cleaned["results"][0]["status"] == "present"
        assert not files_holding(dest, SECRET)
        assert SECRET not in proc.stdout + proc.stderr
        config = dest / "NodeOld" / ".git" / "config"
        assert config.read_text() == config_before.replace(f"user:{SECRET}@", "")
        after = {p: p.read_bytes() for p in (dest / "NodeOld").rglob("*") if p.is_file()}
        assert {p: d for p, d in after.items() if p != config} == {p: d for p, d in before.items() if p != config}

        again, dummy = nodes_run(dest, nodes=[url])
        assert again["changed"] is False, again
        # Fetches still authenticate: the token comes from the manifest, through git's environment.
        node.commit({"v2.py": ""}, "v2")
        refresh(served, "NodeOld.git", node)
        (dest / "NodeOld" / "config.py").write_text("x = 1\n")
        updated, dummy = nodes_run(dest, nodes=[url], update=True)
        assert updated["results"][0]["status"] == "updated", updated
    assert not files_holding(dest, SECRET)


def test_a_stalled_host_fails_its_node_in_time_and_the_others_finish(tmp_path):
    src, served = tmp_path / "src", tmp_path / "served"
    by_daemon = make_node_repo(src / "NodeDaemon")
    by_http = make_node_repo(src / "NodeHttp")
    fetched = make_node_repo(src / "NodeStalledFetch")
    for repo in (by_daemon, by_http):
        publish(repo, served)
    dest = tmp_path / "custom_nodes"
    with SilentServer() as silent, GitDaemon(served) as daemon, SmartHttpGit(served) as http:
        # A checkout whose origin stalls: updating it is a fetch that never gets an answer.
        git(tmp_path, "clone", "-q", fetched.url, str(dest / "NodeStalledFetch"))
        git(dest / "NodeStalledFetch", "remote", "set-url", "origin", silent.url("NodeStalledFetch.git"))
        nodes = [
            silent.url("NodeStalledHttp.git"),
            silent.url("NodeStalledGit.git", scheme="git"),
            daemon.url("NodeDaemon.git"),
            http.url("NodeHttp.git"),
            silent.url("NodeStalledFetch.git"),
        ]
        started = time.monotonic()
        result, proc = nodes_run(dest, nodes=nodes, git_timeout=3, update=True, fail_on_error=False)
        elapsed = time.monotonic() - started
        assert not result.get("failed"), result
        results = by_name(result)
        host = f"127.0.0.1:{silent.port}"
        for name in ("NodeStalledHttp", "NodeStalledGit", "NodeStalledFetch"):
            assert results[name]["status"] == "failed", results[name]
            assert results[name]["reason"].startswith(f"no answer from {host} within 3 s"), results[name]
        assert results["NodeDaemon"]["status"] == results["NodeHttp"]["status"] == "cloned"
        assert silent.connections >= 3
        # Nothing git started is left: no process talks to the silent host any more.
        assert running(host) == []
        assert "no answer from" in " ".join(result["warnings"])
    # A hang detector, not a benchmark: three stalls of 3 s, side by side, within a minute.
    assert elapsed < 60
    assert no_staging_left(dest)
    assert sorted(os.listdir(dest)) == ["NodeDaemon", "NodeHttp", "NodeStalledFetch"]


def test_site_start_with_a_stalled_node_still_writes_comfyuis_command_line(tmp_path):
    root = tmp_path
    make_comfyui_repo(root / "upstream/ComfyUI")
    node = make_node_repo(root / "upstream/NodeFine")
    make_venv(root / "venv")
    (root / "workflows").mkdir()
    manifests = root / "manifests"
    manifests.mkdir()
    with SilentServer() as silent:
        (manifests / "t_nodes.txt").write_text(
            f"{silent.url('NodeStalled.git')}|main|x|a host that hangs\n{node.url}|main|x|fine\n"
        )
        (manifests / "t_models.txt").write_text("")
        run = run_playbook(
            REPO / "site.yml",
            {**site_vars(root, "t"), "custom_nodes_git_timeout": 3},
            env={"COMFY_ARGS": "--preview-method auto"},
        )
        assert run.rc == 0 and run.failed == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert f"no answer from 127.0.0.1:{silent.port} within 3 s" in run.stdout
        assert running(f"127.0.0.1:{silent.port}") == []
    launch = json.loads((root / "workspace/aiclipse/.state/launch.json").read_text())
    assert "--preview-method" in json.dumps(launch)
    assert (root / "workspace/aiclipse/custom_nodes/NodeFine/__init__.py").is_file()


def test_a_commit_id_in_the_branch_field_is_cloned_as_the_pin(tmp_path):
    src, served = tmp_path / "src", tmp_path / "served"
    node = make_node_repo(src / "NodeSha")
    wanted = node.head()
    node.commit({"later.py": ""}, "later")
    publish(node, served)
    manifest = tmp_path / "nodes.txt"
    dest = tmp_path / "custom_nodes"
    with GitDaemon(served) as daemon:
        manifest.write_text(f"{daemon.url('NodeSha.git')}|{wanted[:10]}|x|pinned in the branch field\n")
        result, dummy = nodes_run(dest, manifests=[str(manifest)])
        assert not result.get("failed"), result
        assert result["results"][0]["commit"] == wanted and result["results"][0]["pin"] == wanted[:10]
        assert git(dest / "NodeSha", "rev-parse", "HEAD") == wanted
        again, dummy = nodes_run(dest, manifests=[str(manifest)])
        assert again["changed"] is False


def test_a_manifest_with_a_byte_order_mark_installs_its_nodes(tmp_path):
    node = make_node_repo(tmp_path / "src" / "NodeBom")
    manifest = tmp_path / "nodes.txt"
    manifest.write_bytes(b"\xef\xbb\xbf" + f"{node.url}|main|x|saved by a Windows editor\n".encode())
    result, dummy = nodes_run(tmp_path / "custom_nodes", manifests=[str(manifest)])
    assert not result.get("failed"), result
    assert result["results"][0]["status"] == "cloned" and result["results"][0]["origin"] == f"{manifest}:1"


def test_a_node_named_like_old_staging_directories_is_kept_and_so_is_an_unrecorded_leftover(tmp_path):
    node = make_node_repo(tmp_path / "src" / ".aiclipse-staging-mine")
    dest = tmp_path / "custom_nodes"
    first, dummy = nodes_run(dest, nodes=[node.url])
    assert first["results"][0]["status"] == "cloned", first
    (dest / ".aiclipse-staging-mine" / "notes.txt").write_text("the user's notes\n")
    # Shaped like what a killed run of an earlier version left (a staging directory with a half
    # clone), but no journal names it: it may be the user's, so it stays.
    leftover = dest / ".aiclipse-staging-k1ll3d"
    (leftover / "checkout" / ".git").mkdir(parents=True)
    again, dummy = nodes_run(dest, nodes=[node.url])
    assert again["changed"] is False and again["results"][0]["status"] == "present", again
    assert (dest / ".aiclipse-staging-mine" / "notes.txt").read_text() == "the user's notes\n"
    assert (leftover / "checkout" / ".git").is_dir()


def test_a_users_own_folder_is_left_alone_unless_asked(tmp_path, pod_venv, pip_args):
    dest = tmp_path / "custom_nodes"
    mine = dest / "MyNode"
    mine.mkdir(parents=True)
    (mine / "__init__.py").write_text("# copied by hand\n")
    (mine / "requirements.txt").write_text("fakedep==2.0\n")
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    marker = trap_pip(pod_venv)
    left, dummy = nodes_run(dest, pod_venv, pip_args, nodes=["file:///elsewhere/MyNode"], diff=True)
    assert left["changed"] is False and not left.get("failed"), left
    assert (left["results"][0]["status"], left["results"][0]["requirements"]) == ("present", "skipped")
    assert "left as it is, its requirements too" in left["results"][0]["reason"]
    assert not marker.exists(), "pip ran for a folder that is not a git checkout"
    restore_pip(pod_venv)

    opted, dummy = nodes_run(
        dest, pod_venv, pip_args, nodes=["file:///elsewhere/MyNode"], install_non_git_requirements=True
    )
    assert opted["changed"] and opted["results"][0]["requirements"] == "installed", opted
    assert "its requirements.txt was installed" in opted["results"][0]["reason"]
    assert installed_versions(pod_venv)["fakedep"] == "2.0"
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before


@pytest.fixture
def conflict_wheels(tmp_path, wheelhouse):
    """The session's wheels plus needsold 1.0, which depends on fakedep<2."""
    local = tmp_path / "wheels"
    shutil.copytree(wheelhouse, local)
    make_wheel(local, "needsold", "1.0", requires=["fakedep<2"])
    return ["--no-index", "--find-links", str(local)]


def test_conflicting_requirements_are_reported_on_both_nodes(tmp_path, pod_venv, conflict_wheels):
    src = tmp_path / "src"
    old = make_node_repo(src / "NodeOldDep", requirements=["fakedep==1.0"])
    new = make_node_repo(src / "NodeNewDep", requirements=["fakedep==2.0"])
    torch = make_node_repo(src / "NodeOldTorch", requirements=["faketorch==1.0"])
    later = make_node_repo(src / "NodeLater", requirements=["needsold"])
    manifest = tmp_path / "nodes.txt"
    manifest.write_text("".join(f"{repo.url}|main|x|{repo.name}\n" for repo in (old, new, torch, later)))
    dest = tmp_path / "custom_nodes"
    result, dummy = nodes_run(dest, pod_venv, conflict_wheels, manifests=[str(manifest)], fail_on_error=False)
    nodes = by_name(result)
    versions = installed_versions(pod_venv)
    assert (versions["fakedep"], versions["faketorch"], versions["needsold"]) == ("1.0", "2.0", "1.0")
    assert nodes["NodeNewDep"]["requirements"] != "installed", "reported installed, but 1.0 is what is there"
    assert (nodes["NodeOldDep"]["requirements"], nodes["NodeLater"]["requirements"]) == ("installed", "installed")
    loser = nodes["NodeNewDep"]
    assert (loser["status"], loser["requirements"], loser["conflicts_with"]) == ("failed", "conflict", ["NodeOldDep"])
    for text in (loser["reason"], nodes["NodeOldDep"]["reason"]):
        assert "fakedep==1.0" in text and "fakedep==2.0" in text and "The conflict is caused by" in text, text
    assert f"{manifest}:1" in loser["reason"] and f"{manifest}:2" in nodes["NodeOldDep"]["reason"]
    assert nodes["NodeOldDep"]["conflicts_with"] == ["NodeNewDep"]
    # The protected torch: the reason names the package, both versions and pip's explanation.
    greedy = nodes["NodeOldTorch"]
    assert (greedy["status"], greedy["requirements"]) == ("failed", "failed")
    assert "The conflict is caused by" in greedy["reason"] and "(constraint) faketorch==2.0" in greedy["reason"]
    assert "faketorch==1.0" in greedy["reason"]
    warned = " ".join(result["warnings"])
    assert "NodeOldDep" in warned and "NodeNewDep" in warned

    # A later change to one node's requirements may not break what another node has: refused,
    # named on both sides.
    later.commit({"requirements.txt": "fakedep>=2.0\n"}, "wants the new fakedep")
    changed, dummy = nodes_run(
        dest, pod_venv, conflict_wheels, manifests=[str(manifest)], update=True, fail_on_error=False
    )
    nodes = by_name(changed)
    assert nodes["NodeLater"]["status"] == "failed" and nodes["NodeLater"]["requirements"] == "conflict", nodes
    assert "NodeOldDep" in nodes["NodeLater"]["conflicts_with"]
    assert nodes["NodeOldDep"]["requirements"] == "unchanged" and "NodeLater" in nodes["NodeOldDep"]["conflicts_with"]
    assert installed_versions(pod_venv)["fakedep"] == "1.0", "a node's change broke another node's requirements"


def test_a_redirect_to_another_host_never_gets_the_token(tmp_path):
    node = make_node_repo(tmp_path / "src" / "NodeMoved")
    publish(node, tmp_path / "served")
    # The other host asks for the same credentials: git would hand them over if it could.
    with SmartHttpGit(tmp_path / "served", user="user", password=SECRET) as elsewhere, RedirectingServer(
        elsewhere.url("")
    ) as hop:
        result, proc = nodes_run(
            tmp_path / "custom_nodes", nodes=[hop.url("NodeMoved.git", "user", SECRET)], fail_on_error=False
        )
        assert any(r["authorization"] for r in hop.requests), "the first host never got the credentials"
        assert elsewhere.requests, "git did not follow the redirect"
        assert not [r for r in elsewhere.requests if r["authorization"]], elsewhere.requests
    assert result["results"][0]["status"] == "failed", result
    assert SECRET not in proc.stdout + proc.stderr


# -- audit fixes: credentials in messages and argv, stalled hosts, the registry setting -------

MANIFEST_SECRET = "ghp_ManifestSecret0123456789"
RAW_AT_PASSWORD = "left@RIGHTsecretTail987"


def test_a_token_in_a_manifest_line_that_fails_is_never_printed(tmp_path):
    manifest = tmp_path / "nodes.txt"
    manifest.write_text(
        f"https://user:{MANIFEST_SECRET}@github.com/owner/good.git|main|x|fine\n"
        f"htps://user:{MANIFEST_SECRET}@github.com/owner/typo.git|main|x|scheme typo\n"
        f"https://user:{MANIFEST_SECRET}@github.com/owner/bad+name.git|main|x|bad name\n"
        f"user:{MANIFEST_SECRET}@github.com/owner/noscheme.git|main|x|no scheme\n"
        f"https://user:{RAW_AT_PASSWORD}@github.com/owner/raw+at.git|main|x|raw at\n"
        f"https://github.com/owner/query+name.git?access_token={MANIFEST_SECRET}|main|x|query\n"
    )
    nodes = [
        {"url": f"htps://user:{MANIFEST_SECRET}@github.com/owner/listed.git"},
        f"https://user:{MANIFEST_SECRET}@github.com/owner/listed+line.git|main",
    ]
    dest = tmp_path / "custom_nodes"
    result, proc = nodes_run(dest, manifests=[str(manifest)], nodes=nodes, verbosity=3)
    assert result.get("failed")
    output = proc.stdout + proc.stderr
    for secret in (MANIFEST_SECRET, "RIGHTsecretTail987"):
        assert secret not in output, output[-3000:]
    # Each problem still names its file and line (or the item of the list) and the host.
    for line in (2, 3, 4, 5, 6):
        assert f"{manifest}:{line}: " in result["msg"], result["msg"]
    assert "nodes[0]: " in result["msg"] and "nodes[1]:1: " in result["msg"], result["msg"]
    assert "'htps://***@github.com/owner/typo.git' is not a git URL" in result["msg"]
    assert "'https://***@github.com/owner/raw+at.git'" in result["msg"]
    assert not dest.exists()


def test_a_token_in_github_url_never_reaches_the_argv_of_ls_remote(tmp_path):
    repo = make_node_repo(tmp_path / "src" / "PackRepo")
    repo.tag("v1.0.0")
    served = tmp_path / "served"
    publish(repo, served, "owner/PackRepo")
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "w.json").write_text(ui_workflow(ui_node(1, "PackNode", [], aux_id="owner/PackRepo", ver="1.0.0")))
    dest = tmp_path / "custom_nodes"
    secret = "ghp_LsRemoteSecret4711"  # this test's own: the sampler sees every process here
    with SmartHttpGit(served, user="user", password=secret, delay=0.3) as server:
        # As a role passes it: from a variable, not on ansible's own command line.
        github = f"http://user:{secret}@127.0.0.1:{server.port}"
        with ArgvSampler() as seen:
            result, proc = nodes_run(
                dest,
                workflows=[str(workflows)],
                github_url="{{ lookup('ansible.builtin.env', 'TEST_GITHUB_URL') }}",
                registry_endpoint="",
                env={"TEST_GITHUB_URL": github},
                verbosity=3,
            )
    assert not result.get("failed"), result
    # The tag was found (the credential reached git), and the clone is at it.
    assert by_name(result)["PackRepo"]["branch"] == "v1.0.0", result
    assert any("ls-remote" in line for line in seen.matching(f"127.0.0.1:{server.port}")), seen.samples
    leaked = [line for line in seen.lines if secret in line]
    assert not leaked, leaked
    assert secret not in proc.stdout + proc.stderr
    assert not files_holding(dest, secret)


def test_a_raw_at_sign_in_a_password_is_masked_whole(tmp_path):
    repo = make_node_repo(tmp_path / "src" / "NodeAt")
    publish(repo, tmp_path / "served")
    dest = tmp_path / "custom_nodes"
    with SmartHttpGit(tmp_path / "served", user="user", password=RAW_AT_PASSWORD) as server:
        url = server.url("NodeAt.git", user="user", password=RAW_AT_PASSWORD)
        manifest = tmp_path / "nodes.txt"
        manifest.write_text(url + "|main|x|y\n")
        result, proc = nodes_run(dest, manifests=[str(manifest)], verbosity=3)
    assert by_name(result)["NodeAt"]["status"] == "cloned", result
    assert by_name(result)["NodeAt"]["url"] == f"http://***@127.0.0.1:{server.port}/NodeAt.git"
    assert "RIGHTsecretTail987" not in proc.stdout + proc.stderr
    assert not files_holding(dest, "RIGHTsecretTail987")


def test_packs_on_one_stalled_host_cost_one_timeout_not_one_each(tmp_path):
    packs = 4
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    nodes = [ui_node(i + 1, f"Pack{i}Node", [], aux_id=f"owner/Pack{i}", ver="1.0.0") for i in range(packs)]
    (workflows / "w.json").write_text(ui_workflow(*nodes))
    dest = tmp_path / "custom_nodes"
    with SilentServer() as silent:
        started = time.monotonic()
        result, dummy = nodes_run(
            dest,
            workflows=[str(workflows)],
            github_url=silent.url("").rstrip("/"),
            registry_endpoint="",
            git_timeout=3,
            fail_on_error=False,
        )
        elapsed = time.monotonic() - started
        host = f"127.0.0.1:{silent.port}"
        assert running(host) == []
        # One git command waited for the host; every later one was not sent to it.
        assert silent.connections == 1, silent.connections
    results = by_name(result)
    assert sorted(results) == [f"Pack{i}" for i in range(packs)], result
    for pack in results.values():
        assert pack["status"] == "failed" and pack["reason"].startswith(f"no answer from {host} within 3 s"), pack
    # Serial timeouts take (packs + 1) x 3 s at the least; this is far from that, not a benchmark.
    assert elapsed < (packs + 1) * 3, elapsed


def test_an_unreachable_registry_is_asked_once_and_told_once(tmp_path):
    node = make_node_repo(tmp_path / "src" / "NodeFine")
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    ids = ["pack-one", "pack-two", "pack-three"]
    nodes = [ui_node(i + 1, f"N{i}", [], cnr_id=cnr_id, ver="1.0.0") for i, cnr_id in enumerate(ids)]
    (workflows / "w.json").write_text(ui_workflow(*nodes))
    dest = tmp_path / "custom_nodes"
    with SilentServer() as silent:
        result, dummy = nodes_run(
            dest,
            nodes=[node.url],
            workflows=[str(workflows)],
            registry_endpoint=f"http://127.0.0.1:{silent.port}",
            registry_timeout=2,
        )
        assert silent.connections == 1, silent.connections
    assert not result.get("failed"), result
    assert by_name(result)["NodeFine"]["status"] == "cloned"
    packs = {pack["key"]: pack for pack in result["workflow_packs"]}
    assert sorted(packs) == sorted(f"cnr:{cnr_id}" for cnr_id in ids), packs
    assert {pack["status"] for pack in packs.values()} == {"unknown"}, packs
    told = [w for w in result["warnings"] if "Comfy Registry" in w]
    assert len(told) == 1 and all(cnr_id in told[0] for cnr_id in ids), result["warnings"]


@pytest.mark.parametrize("endpoint", ["api.comfy.org", f"https://user:{MANIFEST_SECRET}@api.comfy.org"])
def test_a_malformed_registry_endpoint_is_a_warning_and_manifest_nodes_install(tmp_path, endpoint):
    node = make_node_repo(tmp_path / "src" / "NodeFine")
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "w.json").write_text(ui_workflow(ui_node(1, "X", [], cnr_id="some-pack", ver="1.0.0")))
    dest = tmp_path / "custom_nodes"
    result, proc = nodes_run(
        dest,
        nodes=[node.url],
        workflows=[str(workflows)],
        registry_endpoint=endpoint,
        fail_on_error=False,
        verbosity=3,
    )
    assert not result.get("failed"), result
    assert (dest / "NodeFine" / "__init__.py").is_file()
    assert by_name(result)["NodeFine"]["status"] == "cloned"
    assert [p["status"] for p in result["workflow_packs"]] == ["unknown"], result["workflow_packs"]
    assert any("COMFY_REGISTRY_ENDPOINT" in w for w in result["warnings"]), result["warnings"]
    assert MANIFEST_SECRET not in proc.stdout + proc.stderr


def test_a_token_stored_in_a_checkout_no_list_names_is_removed_too(tmp_path):
    src, served = tmp_path / "src", tmp_path / "served"
    gone = make_node_repo(src / "NodeGone", extra_files={"config.py": "x = 1\n"})
    listed = make_node_repo(src / "NodeListed")
    publish(gone, served)
    dest = tmp_path / "custom_nodes"
    dest.mkdir()
    # A user's own folder (not a checkout) and one with a broken .git: git must not reach up
    # from them into an enclosing repository.
    (dest / "MyOwn").mkdir()
    (dest / "MyOwn" / "notes.txt").write_text(f"https://user:{SECRET}@example.com/keep-as-is\n")
    (dest / "Broken" / ".git").mkdir(parents=True)
    git(tmp_path, "init", "-q", str(dest))  # custom_nodes inside a repository, as in ComfyUI
    git(dest, "remote", "add", "origin", f"https://user:{SECRET}@example.com/ComfyUI.git")
    with SmartHttpGit(served, user="user", password=SECRET) as server:
        url = server.url("NodeGone.git", auth=True)
        # What earlier versions did: the URL, token and all, stored by git.
        subprocess.run(
            ["git", "clone", "-q", url, str(dest / "NodeGone")],
            check=True,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    (dest / "NodeGone" / "config.py").write_text("x = 2  # the user's edit\n")
    before = {p: p.read_bytes() for p in (dest / "NodeGone").rglob("*") if p.is_file()}
    config = dest / "NodeGone" / ".git" / "config"
    config_before = config.read_text()

    check, dummy = nodes_run(dest, nodes=[listed.url], check=True)
    assert check["changed"] and check["credentials_removed"] == [str(dest / "NodeGone")], check
    assert SECRET in config.read_text(), "check mode changed the checkout"

    cleaned, proc = nodes_run(dest, nodes=[listed.url], diff=True, verbosity=3)
    assert cleaned["changed"] and cleaned["credentials_removed"] == [str(dest / "NodeGone")], cleaned
    assert "NodeGone: token removed from origin" in cleaned["diff"]["after"]
    assert SECRET not in proc.stdout + proc.stderr
    assert config.read_text() == config_before.replace(f"user:{SECRET}@", "")
    after = {p: p.read_bytes() for p in (dest / "NodeGone").rglob("*") if p.is_file()}
    assert {p: d for p, d in after.items() if p != config} == {p: d for p, d in before.items() if p != config}
    # Nothing else was touched: the user's folder, nor the repository custom_nodes sits in.
    assert SECRET in (dest / "MyOwn" / "notes.txt").read_text()
    assert SECRET in git(dest, "remote", "get-url", "origin")

    again, dummy = nodes_run(dest, nodes=[listed.url])
    assert again["changed"] is False and again["credentials_removed"] == [], again
