"""custom_nodes module and role against local node repos and a real venv (no internet).

A stand-in torch (faketorch 2.0) is installed in the venv; a node asking for faketorch==1.0
must fail without replacing it, while the other nodes still install.
"""
import os
import shutil

from harness.ansible_run import run_module, run_playbook
from harness.comfyui_fixtures import trap_pip
from harness.git_repos import git, make_node_repo
from harness.paths import VENV_BIN
from harness.python_env import installed_versions

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
    return not [p for p in os.listdir(dest) if p.startswith(".aiclipse-staging")]


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
        f"http://user:{SECRET}@127.0.0.1:9/NodePrivate.git|main|x|unreachable, token in URL\n")
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
    repos = [make_node_repo(src / f"Node{i}", requirements=["fakedep==1.0"] if i == 0 else None)
             for i in range(6)]
    pinned = repos[1].head()
    repos[1].commit({"later.py": ""}, "a later commit the pin must not get")
    branchy = repos[2]
    branchy.branch("dev")
    dev_head = branchy.head("dev")
    branchy.commit({"main-only.py": ""}, "main moves on")
    manifest = tmp_path / "nodes.txt"
    manifest.write_text(f"{repos[0].url}|main|u|reqs\n{repos[1].url}|main|u|pinned|{pinned[:12]}\n"
                        f"{branchy.url}|dev|u|a branch\n")
    # A git that takes 1.5 s per clone and logs when each one ran.
    log = tmp_path / "clones.log"
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\ncase \" $* \" in *\" clone \"*)\n"
                       f"  start=$(date +%s.%N); sleep 1.5; echo \"$start $(date +%s.%N)\" >> {log};;\n"
                       "esac\nexec /usr/bin/git \"$@\"\n")
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
    nodes = [with_reqs.url, f"{pinned.url}||||{pin}", elsewhere.url]
    baked = tmp_path / "opt" / "ComfyUI" / "custom_nodes"
    bake, dummy = nodes_run(baked, pod_venv, pip_args, nodes=nodes)
    assert bake["counts"]["cloned"] == 3, bake
    # The pod wants NodeDev on another branch than the baked one: that one must be cloned.
    nodes[2] = f"{elsewhere.url}|dev"
    shutil.rmtree(src / "NodeReqs")
    shutil.rmtree(src / "NodePinned")
    marker = trap_pip(pod_venv)

    vault = tmp_path / "vault" / "ComfyUI" / "custom_nodes"
    boot, dummy = nodes_run(vault, pod_venv, pip_args, nodes=nodes, seed_from=str(baked))
    assert not boot.get("failed"), boot
    results = by_name(boot)
    assert [results[n]["status"] for n in ("NodeReqs", "NodePinned", "NodeDev")] == ["seeded", "seeded", "cloned"]
    assert results["NodePinned"]["commit"] == pin and results["NodeReqs"]["requirements"] == "unchanged"
    assert git(vault / "NodeDev", "rev-parse", "--abbrev-ref", "HEAD") == "dev"
    assert not marker.exists() and no_staging_left(vault)
    again, dummy = nodes_run(vault, pod_venv, pip_args, nodes=nodes, seed_from=str(baked))
    assert again["changed"] is False and again["counts"]["present"] == 3


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
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n"
                        "    - role: aiclipse.comfyui.custom_nodes\n")
    extra_vars = {"aiclipse_vault": str(vault), "custom_nodes_manifests_dir": str(manifests),
                  "custom_nodes_venv": str(pod_venv), "custom_nodes_pip_args": pip_args,
                  "custom_nodes_protected_packages": ["faketorch"],
                  "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    env = {"TEMPLATE_TYPE": "tmpl"}
    first = run_playbook(playbook, extra_vars, inventory="localhost,", env=env, args=["-c", "local"])
    assert first.rc == 0 and first.changed == 1, first.stdout + first.stderr
    assert sorted(os.listdir(vault / "custom_nodes")) == ["NodeBase", "NodeTemplate", "NodeUser"]
    assert installed_versions(pod_venv)["fakedep"] == "1.0"
    again = run_playbook(playbook, extra_vars, inventory="localhost,", env=env, args=["-c", "local"])
    assert again.rc == 0 and again.changed == 0, again.stdout
