"""The checkout installs as a normal collection and its FQCNs resolve from the installed copy."""

import json
import os
import subprocess

from harness.paths import REPO, VENV_BIN


def _run(*cmd, **kwargs):
    """Run a venv tool; the caller asserts on the result (with its output in the message)."""
    return subprocess.run(
        [str(VENV_BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, check=False, timeout=300, **kwargs
    )


def test_build_and_install_resolve_fqcns(tmp_path):
    probes = [REPO / cache / "aiclipse-build-probe" for cache in (".hypothesis", ".pytest_cache")]
    for probe in probes:
        probe.parent.mkdir(exist_ok=True)
        probe.write_text("not for the collection\n")
    try:
        build = _run("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO))
    finally:
        for probe in probes:
            probe.unlink()
    assert build.returncode == 0, build.stderr
    tarballs = list(tmp_path.glob("aiclipse-comfyui-*.tar.gz"))
    assert len(tarballs) == 1
    listing = subprocess.run(
        ["tar", "-tzf", str(tarballs[0])], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "galaxy.yml" not in listing and "MANIFEST.json" in listing
    # A build after the tests must not ship their caches: make them exist first.
    assert not [
        name
        for name in listing
        if name.startswith(
            (".venv", "collections/", ".cache", ".hypothesis", ".pytest_cache", ".ruff_cache", "tests/output")
        )
        or ".egg-info" in name
        or "__pycache__" in name
    ]
    # What a reader of the published collection gets: a README per role, the changelog and
    # the data it is generated from.
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    shipped_docs = [f"roles/{role}/README.md" for role in roles] + [
        "README.md",
        "CHANGELOG.md",
        "changelogs/changelog.yaml",
        "changelogs/config.yaml",
    ]
    assert not [name for name in shipped_docs if name not in listing]

    dest = tmp_path / "installed"
    # Outside the checkout, with only the installed copy on the collections path.
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(dest),
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
    )
    install = _run("ansible-galaxy", "collection", "install", "-p", str(dest), str(tarballs[0]), cwd=tmp_path, env=env)
    assert install.returncode == 0, install.stderr
    assert (dest / "ansible_collections/aiclipse/comfyui/MANIFEST.json").exists(), install.stdout

    listed = _run("ansible-galaxy", "collection", "list", "aiclipse.comfyui", "--format", "json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    found = {path: cols for path, cols in json.loads(listed.stdout).items() if "aiclipse.comfyui" in cols}
    assert list(found) == [str(dest / "ansible_collections")]
    modules = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if p.stem != "__init__")
    assert modules, "the collection has modules"
    for module in modules:
        doc = _run("ansible-doc", "--json", f"aiclipse.comfyui.{module}", cwd=tmp_path, env=env)
        assert doc.returncode == 0 and f"aiclipse.comfyui.{module}" in json.loads(doc.stdout), doc.stderr
    for role in roles:
        doc = _run("ansible-doc", "-t", "role", "--json", f"aiclipse.comfyui.{role}", cwd=tmp_path, env=env)
        assert doc.returncode == 0, doc.stderr
        assert json.loads(doc.stdout)[f"aiclipse.comfyui.{role}"]["entry_points"]["main"]["options"]
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug: {msg: ok}\n"
        "- ansible.builtin.import_playbook: aiclipse.comfyui.site\n"
    )
    syntax = _run("ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook), cwd=tmp_path, env=env)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_requirements_yml_is_met_offline_by_the_setup():
    """requirements.yml names what molecule needs; set-up must provide it without Galaxy."""
    import yaml
    from ansible.module_utils.compat.version import LooseVersion

    wanted = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    assert wanted, "requirements.yml lists the collections the scenarios use"
    listed = _run("ansible-galaxy", "collection", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    installed = {}
    for collections in json.loads(listed.stdout).values():
        for name, info in collections.items():
            installed.setdefault(name, info["version"])
    for item in wanted:
        assert item["name"] in installed, f"{item['name']} is not installed by make setup"
        version = LooseVersion(installed[item["name"]])
        for clause in item["version"].split(","):
            op, bound = clause[:2] if clause[1] == "=" else clause[:1], clause.lstrip("<>=!")
            check = {
                ">=": version >= LooseVersion(bound),
                "<": version < LooseVersion(bound),
                "<=": version <= LooseVersion(bound),
                ">": version > LooseVersion(bound),
            }[op]
            assert check, f"{item['name']} {installed[item['name']]} does not satisfy {item['version']}"
