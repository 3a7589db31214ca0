"""AUTO_UPDATE end to end: aiclipse-config-update against local git repositories standing in
for CONFIG_REPO, then the chosen copy's site.yml run the way the entrypoint runs it.

The config repository starts as this checkout's committed tree (so the real site.yml must pass
the update's checks), then gets a commit that swaps site.yml for a tiny probe play: role
`aiclipse.comfyui.boot_probe` (only in the config repo, so it resolves only from the fetched
checkout) writes its version and the template models manifest it finds into the vault, which
tells the test which copy a boot really ran. The manifest comes the way README documents for
config repos: `manifests/` at the root, found through `models_manifests_dir` in the local
inventory's group_vars.
"""
import base64
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.nginx import NginxOrigin
from harness.paths import REPO, VENV_BIN

SCRIPT = REPO / "roles" / "launcher" / "files" / "aiclipse-config-update"
ENTRYPOINT = REPO / "roles" / "launcher" / "files" / "aiclipse-entrypoint"

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Config Maintainer",
    "GIT_AUTHOR_EMAIL": "config@example.invalid",
    "GIT_COMMITTER_NAME": "Config Maintainer",
    "GIT_COMMITTER_EMAIL": "config@example.invalid",
}

PROBE_SITE = """\
---
# Test stand-in for provisioning: records which copy of the collection a boot ran.
- name: Boot probe
  hosts: pods
  gather_facts: false
  roles:
    - role: aiclipse.comfyui.boot_probe
"""

PROBE_TASKS = """\
---
- name: Make the probe directory
  ansible.builtin.file:
    path: "{{ aiclipse_vault }}/probe"
    state: directory
    mode: "0755"

- name: Record the role version that ran
  ansible.builtin.copy:
    content: "{{ boot_probe_version }}\\n"
    dest: "{{ aiclipse_vault }}/probe/role.txt"
    mode: "0644"

- name: Record the template models manifest this copy points the roles at
  ansible.builtin.copy:
    src: "{{ models_manifests_dir }}/sd15-basic_models.txt"
    dest: "{{ aiclipse_vault }}/probe/models.txt"
    mode: "0644"
"""

# What a config repo adds to carry its own manifests (see README, "Runtime updates").
MANIFESTS_VARS = """\
---
models_manifests_dir: "{{ inventory_dir }}/../../manifests"
custom_nodes_manifests_dir: "{{ inventory_dir }}/../../manifests"
"""

MODEL_SD15 = "url|https://example.invalid/v1-5-pruned-emaonly.safetensors|sd15.safetensors|checkpoints\n"
MODEL_VAE = "Comfy-Org/Qwen-Image_ComfyUI|split_files/vae/qwen_image_vae.safetensors|vae\n"


def probe_files(version, models):
    return {
        "site.yml": PROBE_SITE,
        "roles/boot_probe/tasks/main.yml": PROBE_TASKS,
        "roles/boot_probe/defaults/main.yml": f"---\nboot_probe_version: {version}\n",
        "inventories/local/group_vars/pods.yml": MANIFESTS_VARS,
        "manifests/sd15-basic_models.txt": "# sd15-basic template\n" + "".join(models),
    }


def git(*args, cwd, env=None):
    proc = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout.strip()


class ConfigRepo:
    """A working repo and the bare 'remote' pods pull from (file:// URL)."""

    def __init__(self, root, tree):
        self.work = root / "work"
        self.bare = root / "origin.git"
        shutil.copytree(tree, self.work, symlinks=True)
        git("init", "-q", "-b", "main", cwd=self.work)
        self.upstream = self.commit({}, "the collection as committed upstream")
        git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=root)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        git("push", "-q", "origin", "main", cwd=self.work)
        self.url = self.bare.as_uri()

    def commit(self, files, message, signer=None, branch="main"):
        """Write (None deletes) files, commit (signed by `signer`), push; return the commit."""
        for rel, content in files.items():
            path = self.work / rel
            if content is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git("add", "-A", cwd=self.work)
        args = ["commit", "-q", "--allow-empty", "-m", message]
        env = None
        if signer:
            args[1:1] = ["-S" + signer.fingerprint]
            env = {"GNUPGHOME": str(signer.home)}
        git(*args, cwd=self.work, env=env)
        if self.bare.exists():
            git("push", "-q", "origin", f"HEAD:{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


@dataclass
class Boot:
    rc: int
    directory: str
    stderr: str
    role: str = ""
    models: str = ""

    @property
    def commit(self):
        return Path(self.directory).name


class Pod:
    """A pod's vault and settings; boot() = the entrypoint's choice + `ansible-playbook site.yml`."""

    def __init__(self, root, repo):
        self.vault = root / "vault"
        self.baked = root / "baked"
        self.state = self.vault / ".state" / "config"
        self.log = self.vault / "logs" / "config-update.log"
        self.settings = {"CONFIG_REPO": repo.url, "CONFIG_BRANCH": "main"}

    def env(self, **settings):
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("CONFIG_", "AICLIPSE_", "ANSIBLE_"))}
        env.update({"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "AICLIPSE_VAULT": str(self.vault),
                    "AICLIPSE_CONFIG_DIR": str(self.baked), **self.settings})
        env.update(settings)
        return env

    def log_lines(self):
        return self.log.read_text().splitlines() if self.log.exists() else []

    def boot(self, run_site=False, **settings):
        proc = subprocess.run([str(SCRIPT)], env=self.env(**settings), capture_output=True, text=True,
                              timeout=120, check=False)
        lines = proc.stdout.splitlines()
        boot = Boot(proc.returncode, lines[-1] if lines else "", proc.stderr)
        # The contract: exactly one line on stderr, whatever happened.
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        if proc.returncode == 0 and run_site:
            self.run_site(boot)
        return boot

    def run_site(self, boot):
        """What the entrypoint does with the directory it was given."""
        probe = self.vault / "probe"
        shutil.rmtree(probe, ignore_errors=True)
        env = self.env(ANSIBLE_CONFIG=f"{boot.directory}/ansible.cfg", ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-c", "local", "site.yml",
             "-e", f"aiclipse_vault={self.vault}",
             "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"],
            cwd=boot.directory, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"site.yml of {boot.directory} failed:\n{proc.stdout}\n{proc.stderr}"
        boot.role = (probe / "role.txt").read_text().strip()
        boot.models = (probe / "models.txt").read_text()

    def checkouts(self):
        return sorted(path.name for path in (self.state / "checkouts").iterdir())

    def leftovers(self):
        return sorted(path.name for path in self.state.iterdir()
                      if path.name.startswith(("incoming-", "trash-", "gnupg-")))


@pytest.fixture(scope="module")
def committed_tree(tmp_path_factory):
    """This checkout's committed files (what a clean clone has), once per module."""
    root = tmp_path_factory.mktemp("committed-tree")
    archive = root / "tree.tar"
    with open(archive, "wb") as handle:
        subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(root / "tree", filter="tar")
    return root / "tree"


@pytest.fixture
def repo(tmp_path, committed_tree):
    return ConfigRepo(tmp_path / "config", committed_tree)


@pytest.fixture
def pod(tmp_path, repo):
    return Pod(tmp_path, repo)


@pytest.fixture
def probed(repo, pod):
    """A pod that booted once on the probe's v1 commit."""
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    boot = pod.boot()
    assert (boot.rc, boot.commit) == (0, v1), boot.stderr
    return v1


def assert_fell_back(pod, boot, good, *words):
    """The boot ran `good` and said why in one line, on stderr and in the vault's log."""
    assert boot.rc == 0, boot.stderr
    assert boot.commit == good
    assert boot.directory == str(pod.state / "checkouts" / good)
    line = boot.stderr.strip()
    assert line.startswith("aiclipse-config-update: could not update from "), line
    assert f"running the last good copy {good[:12]}" in line
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    assert pod.log_lines()[-1].endswith(line.split(": ", 1)[1])
    assert os.path.realpath(pod.state / "current") == boot.directory
    assert pod.leftovers() == []


def test_new_commit_with_a_model_and_a_role_change_is_picked_up_on_next_boot(repo, pod):
    # Boot 1: the real collection tree passes the checks (site.yml parses, collection layout).
    first = pod.boot(run_site=False)
    assert first.rc == 0, first.stderr
    assert first.directory == str(pod.state / "checkouts" / repo.upstream)
    assert git("rev-parse", "HEAD", cwd=first.directory) == repo.upstream
    collection = Path(first.directory, "collections/ansible_collections/aiclipse/comfyui")
    assert collection.resolve() == Path(first.directory)
    assert "(first checkout)" in first.stderr

    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    second = pod.boot(run_site=True)
    assert (second.commit, second.role) == (v1, "v1")
    assert MODEL_VAE not in second.models
    assert f"updated from {repo.upstream[:12]}" in second.stderr

    v2 = repo.commit(probe_files("v2", [MODEL_SD15, MODEL_VAE]), "add the Qwen VAE, probe v2")
    third = pod.boot(run_site=True)
    assert (third.commit, third.role) == (v2, "v2")
    assert MODEL_SD15 in third.models and MODEL_VAE in third.models
    assert f"commit {v2[:12]} (updated from {v1[:12]})" in third.stderr

    # Same commit again: reused as is, and only the copy in use and the one before it are kept.
    again = pod.boot()
    assert again.commit == v2
    assert "(unchanged)" in again.stderr
    assert pod.checkouts() == sorted([v1, v2])
    assert os.path.realpath(pod.state / "previous") == second.directory
    assert len(pod.log_lines()) == 4


def test_unreachable_repository_boots_the_last_good_copy_then_recovers(repo, pod, probed):
    repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2, not reachable yet")
    boot = pod.boot(run_site=True, CONFIG_REPO="file:///nonexistent/config.git")
    assert_fell_back(pod, boot, probed, "file:///nonexistent/config.git", "fetch failed")
    assert boot.role == "v1"
    boot = pod.boot(CONFIG_REPO="http://127.0.0.1:9/config.git")
    assert_fell_back(pod, boot, probed, "http://127.0.0.1:9/config.git", "Couldn't connect")
    v2 = repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2")
    boot = pod.boot(run_site=True)
    assert (boot.commit, boot.role) == (v2, "v2")


def test_missing_ref_boots_the_last_good_copy_and_branches_tags_commits_work(repo, pod, probed):
    boot = pod.boot(CONFIG_BRANCH="no-such-branch")
    assert_fell_back(pod, boot, probed, "CONFIG_BRANCH 'no-such-branch' is not a branch, tag or commit")

    release = repo.commit(probe_files("release", [MODEL_SD15]), "release build", branch="release")
    assert pod.boot(CONFIG_BRANCH="release").commit == release
    git("tag", "-a", "-m", "tagged", "v1.0", probed, cwd=repo.work)
    git("push", "-q", "origin", "v1.0", cwd=repo.work)
    assert pod.boot(CONFIG_BRANCH="v1.0").commit == probed
    boot = pod.boot(run_site=True, CONFIG_BRANCH=release[:10])
    assert (boot.commit, boot.role) == (release, "release")


def test_broken_playbook_boots_the_last_good_copy_until_the_next_good_commit(repo, pod, probed):
    broken = {
        "site.yml is not YAML": ({"site.yml": "- name: [unclosed\n  hosts: all\n"},
                                 "syntax-check: [ERROR]: YAML parsing failed"),
        "a role that does not exist": ({"site.yml": PROBE_SITE.replace("boot_probe", "no_such_role")},
                                       "syntax-check: [ERROR]: the role 'aiclipse.comfyui.no_such_role' was not found"),
        "no collection link": (
            {"collections/ansible_collections/aiclipse/comfyui": None}, "is not the collection"),
    }
    for what, (files, reason) in broken.items():
        bad = repo.commit(files, f"broken: {what}")
        boot = pod.boot()
        assert_fell_back(pod, boot, probed, f"commit {bad[:12]}: ", reason)
        if "syntax-check" in reason:
            assert "Origin: site.yml:" in boot.stderr  # where in the file, relative to the repo
        assert bad not in pod.checkouts(), what
        git("revert", "--no-edit", "HEAD", cwd=repo.work)
    v2 = repo.commit(probe_files("v2", [MODEL_SD15, MODEL_VAE]), "probe v2")
    boot = pod.boot(run_site=True)
    assert (boot.commit, boot.role) == (v2, "v2")
    assert MODEL_VAE in boot.models


@dataclass
class Signer:
    home: Path
    fingerprint: str


def make_signer(home, name):
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{name} <{name}@example.invalid>",
                    "ed25519", "sign", "never"], env=env, capture_output=True, check=True)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env,
                             capture_output=True, text=True, check=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return Signer(home, fingerprint)


@pytest.fixture
def signers(tmp_path):
    """A maintainer key (trusted by the pod) and a stranger's key (not trusted)."""
    made = [make_signer(tmp_path / "gpg-maintainer", "maintainer"),
            make_signer(tmp_path / "gpg-stranger", "stranger")]
    yield made
    for signer in made:
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(signer.home)},
                       check=False)


def test_verify_commit_accepts_only_commits_signed_by_a_trusted_key(tmp_path, repo, pod, signers):
    maintainer, stranger = signers
    keys = tmp_path / "trusted-keys.asc"
    keys.write_bytes(subprocess.run(["gpg", "--batch", "--armor", "--export", maintainer.fingerprint],
                                    env={**os.environ, "GNUPGHOME": str(maintainer.home)},
                                    capture_output=True, check=True).stdout)
    # Before checks were turned on the pod ran an unsigned commit; once they are on, that copy
    # is no fallback for a refused one.
    early = repo.commit(probe_files("early", [MODEL_SD15]), "probe, unsigned, before checks")
    assert pod.boot().commit == early
    pod.settings.update({"CONFIG_VERIFY_COMMIT": "true", "CONFIG_TRUSTED_KEYS": str(keys)})
    boot = pod.boot()
    assert boot.rc == 1 and boot.directory == ""
    assert f"running nothing: no copy in the vault and no site.yml in the baked copy {pod.baked} " \
           f"(not {early[:12]}: fetched before CONFIG_VERIFY_COMMIT was on)" in boot.stderr

    signed = repo.commit(probe_files("signed", [MODEL_SD15]), "probe, signed", signer=maintainer)
    boot = pod.boot()
    assert (boot.rc, boot.commit) == (0, signed), boot.stderr

    repo.commit(probe_files("unsigned", [MODEL_SD15]), "probe, unsigned")
    boot = pod.boot(run_site=True)
    assert_fell_back(pod, boot, signed, "Failed to verify GPG signature", "CONFIG_VERIFY_COMMIT is on")
    assert boot.role == "signed"

    stranger_commit = repo.commit(probe_files("stranger", [MODEL_SD15]), "probe, signed by someone else",
                                  signer=stranger)
    boot = pod.boot()
    assert_fell_back(pod, boot, signed, "Failed to verify GPG signature")
    assert pod.checkouts() == sorted([early, signed])  # current and previous

    # The check is what refused them: without it the same history is taken as it is.
    assert pod.boot(CONFIG_VERIFY_COMMIT="false").commit == stranger_commit

    resigned = repo.commit(probe_files("signed-again", [MODEL_SD15]), "probe, signed", signer=maintainer)
    assert pod.boot().commit == resigned


def test_bad_verify_setting_counts_as_on_rather_than_skip_the_check(repo, pod, probed):
    repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2")
    boot = pod.boot(CONFIG_VERIFY_COMMIT="maybe")
    assert (boot.rc, boot.directory) == (1, "")
    assert "CONFIG_VERIFY_COMMIT='maybe' is not a boolean (use true or false)" in boot.stderr
    assert f"(not {probed[:12]}: fetched before CONFIG_VERIFY_COMMIT was on)" in boot.stderr
    assert os.path.realpath(pod.state / "current") == str(pod.state / "checkouts" / probed)


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a fetch that hangs half-way."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/config.git"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_stalled_fetch_is_cut_off_and_never_replaces_the_last_good_copy(pod, probed, silent_server):
    started = time.monotonic()
    boot = pod.boot(CONFIG_REPO=silent_server, CONFIG_UPDATE_TIMEOUT="3")
    assert time.monotonic() - started < 60
    assert_fell_back(pod, boot, probed, "did not finish within 3 s")
    assert pod.checkouts() == [probed]


def test_first_boot_without_a_good_copy_runs_the_baked_one_or_reports_none(repo, pod):
    boot = pod.boot(run_site=False, CONFIG_REPO="file:///nonexistent/config.git")
    assert boot.rc == 1 and boot.directory == ""
    assert "running nothing: no copy in the vault and no site.yml in the baked copy" in boot.stderr

    shutil.copytree(repo.work, pod.baked, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    (pod.baked / "site.yml").write_text(PROBE_SITE)
    for rel, content in probe_files("baked", [MODEL_SD15, MODEL_VAE]).items():
        (pod.baked / rel).parent.mkdir(parents=True, exist_ok=True)
        (pod.baked / rel).write_text(content)
    boot = pod.boot(run_site=True, CONFIG_REPO="file:///nonexistent/config.git")
    assert (boot.rc, boot.directory, boot.role) == (0, str(pod.baked), "baked")
    assert MODEL_VAE in boot.models
    assert f"running the copy baked into the image {pod.baked}" in boot.stderr

    # No CONFIG_REPO at all: the image's own copy runs, even when the vault has a good one.
    repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    assert pod.boot().rc == 0
    boot = pod.boot(run_site=True, CONFIG_REPO="")
    assert boot.role == "baked"
    assert "CONFIG_REPO is not set" in boot.stderr


def test_a_token_in_the_repository_url_is_never_written_down(tmp_path, repo, pod):
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    pod.settings["CONFIG_BRANCH"] = v1  # a commit: git's dumb HTTP cannot do shallow clones
    served = tmp_path / "served"
    served.mkdir()
    shutil.copytree(repo.bare, served / "config.git")
    git("update-server-info", cwd=served / "config.git")  # git's "dumb" HTTP protocol
    # A git that records its argv, the way `ps` would show it to anyone on the pod.
    spy = tmp_path / "spy"
    spy.mkdir()
    argv_log = tmp_path / "git-argv.log"
    (spy / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {argv_log}\nexec {shutil.which("git")} "$@"\n')
    (spy / "git").chmod(0o755)
    secret = "tok-" + os.urandom(8).hex()  # made here: this file is in the fetched tree too
    with NginxOrigin(served) as origin:
        url = f"http://user:{secret}@127.0.0.1:{origin.port}/public/config.git"
        boot = pod.boot(CONFIG_REPO=url, PATH=f"{spy}:{VENV_BIN}:{os.environ['PATH']}")
        assert boot.rc == 0 and "(first checkout)" in boot.stderr, boot.stderr
        assert "http://***@127.0.0.1" in boot.stderr
        unreachable = pod.boot(CONFIG_REPO=url.replace("/public/", "/missing/"))
        assert unreachable.directory == boot.directory
        assert "could not update" in unreachable.stderr
        # The credentials did reach the server, as an Authorization header.
        basic = base64.b64encode(f"user:{secret}".encode()).decode()
        assert any(f'auth="Basic {basic}"' in line for line in origin.log_lines())
    assert "clone" in argv_log.read_text()
    for output in (boot.stderr, unreachable.stderr, boot.directory, argv_log.read_text()):
        assert secret not in output and basic not in output
    for path in pod.vault.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), f"token written to {path}"


def test_the_entrypoint_runs_the_updated_checkout(tmp_path, repo, pod):
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "aiclipse-config-update").symlink_to(SCRIPT)
    # As in the example image: a global ANSIBLE_CONFIG (its cfg asks for YAML results), plus a
    # pod that prefers YAML output too; neither may confuse the update or the run.
    env = pod.env(PATH=f"{tools}:{VENV_BIN}:{os.environ['PATH']}", AUTO_UPDATE="true",
                  AICLIPSE_VENV=str(VENV_BIN.parent), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                  ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    # Arguments replace ComfyUI after provisioning: `true` ends the boot once site.yml ran.
    proc = subprocess.run(["bash", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"aiclipse-config-update: running {repo.url}@main commit {v1[:12]} (first checkout)" in proc.stderr
    assert (pod.vault / "probe" / "role.txt").read_text() == "v1\n"
