"""AUTO_UPDATE end to end: aiclipse-config-update against real git servers on loopback (file://,
git daemon, git's smart and dumb HTTP, stalling servers) standing in for CONFIG_REPO, then the
chosen copy's site.yml run the way the entrypoint runs it, and its outcome reported back.

The config repository starts as this checkout's committed tree (so the real site.yml must pass
the update's checks), then gets a commit that swaps site.yml for a tiny probe play: role
`aiclipse.comfyui.boot_probe` (only in the config repo, so it resolves only from the fetched
checkout) writes its version and the template models manifest it finds into the vault, which
tells the test which copy a boot really ran; `boot_probe_fail` makes it fail when run (a commit
that parses but does not provision). The manifest comes the way README documents for config
repos: `manifests/` at the root, found through `models_manifests_dir` in the local inventory's
group_vars.
"""

import base64
import contextlib
import os
import random
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.git_servers import (
    CountingProxy,
    GitDaemon,
    RedirectingServer,
    SilentServer,
    SmartHttpGit,
    processes_with,
    publish,
)
from harness.git_repos import GitRepo
from harness.nginx import NginxOrigin
from harness.paths import REPO, VENV_BIN

SCRIPT = REPO / "roles" / "launcher" / "files" / "aiclipse-config-update"
ENTRYPOINT = REPO / "roles" / "launcher" / "files" / "aiclipse-entrypoint"
LEASE_SECONDS = 12 * 3600

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

- name: Fail the way a commit that parses but does not provision fails
  ansible.builtin.fail:
    msg: "boot probe {{ boot_probe_version }} fails when it runs"
  when: boot_probe_fail | bool
"""

# What a config repo adds to carry its own manifests (see README, "Runtime updates").
MANIFESTS_VARS = """\
---
models_manifests_dir: "{{ inventory_dir }}/../../manifests"
custom_nodes_manifests_dir: "{{ inventory_dir }}/../../manifests"
"""

MODEL_SD15 = "url|https://example.invalid/v1-5-pruned-emaonly.safetensors|sd15.safetensors|checkpoints\n"
MODEL_VAE = "Comfy-Org/Qwen-Image_ComfyUI|split_files/vae/qwen_image_vae.safetensors|vae\n"


def probe_files(version, models, fail=False):
    return {
        "site.yml": PROBE_SITE,
        "roles/boot_probe/tasks/main.yml": PROBE_TASKS,
        "roles/boot_probe/defaults/main.yml": f"---\nboot_probe_version: {version}\nboot_probe_fail: {str(fail).lower()}\n",
        "inventories/local/group_vars/pods.yml": MANIFESTS_VARS,
        "manifests/sd15-basic_models.txt": "# sd15-basic template\n" + "".join(models),
    }


def git(*args, cwd, env=None):
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout.strip()


class ConfigRepo:
    """A working repo and the bare 'remote' pods pull from (file:// URL; servers serve `root`)."""

    def __init__(self, root, tree):
        self.root = root
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
            git("push", "-q", "-f", "origin", f"HEAD:{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


@dataclass
class Boot:
    rc: int
    directory: str
    stderr: str
    role: str = ""
    models: str = ""
    site_rc: int = None

    @property
    def commit(self):
        return Path(self.directory).name


class Pod:
    """A pod's vault and settings; boot() = the entrypoint's steps: pick a copy, run its site.yml,
    report how that went (aiclipse-config-update --provisioned DIR --exit-code RC)."""

    def __init__(self, root, repo):
        self.vault = root / "vault"
        self.baked = root / "baked"
        self.state = self.vault / ".state" / "config"
        self.log = self.vault / "logs" / "config-update.log"
        self.settings = {"CONFIG_REPO": repo.url, "CONFIG_BRANCH": "main"}

    def env(self, **settings):
        env = {
            key: value for key, value in os.environ.items() if not key.startswith(("CONFIG_", "AICLIPSE_", "ANSIBLE_"))
        }
        env.update(
            {
                "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
                "AICLIPSE_VAULT": str(self.vault),
                "AICLIPSE_CONFIG_DIR": str(self.baked),
                **self.settings,
            }
        )
        env.update(settings)
        return env

    def log_lines(self):
        return self.log.read_text().splitlines() if self.log.exists() else []

    def start(self, **settings):
        """The updater as the entrypoint starts it (for boots run side by side)."""
        return subprocess.Popen(
            [str(SCRIPT)], env=self.env(**settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def boot(self, run_site=False, site_fails=False, **settings):
        proc = subprocess.run(
            [str(SCRIPT)], env=self.env(**settings), capture_output=True, text=True, timeout=180, check=False
        )
        lines = proc.stdout.splitlines()
        boot = Boot(proc.returncode, lines[-1] if lines else "", proc.stderr)
        # The contract: exactly one line on stderr, whatever happened.
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        if proc.returncode == 0 and (run_site or site_fails):
            self.run_site(boot, site_fails)
        return boot

    def run_site(self, boot, fails=False):
        """What the entrypoint does with the directory it was given, and its report after."""
        probe = self.vault / "probe"
        shutil.rmtree(probe, ignore_errors=True)
        env = self.env(ANSIBLE_CONFIG=f"{boot.directory}/ansible.cfg", ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(
            [
                str(VENV_BIN / "ansible-playbook"),
                "-c",
                "local",
                "site.yml",
                "-e",
                f"aiclipse_vault={self.vault}",
                "-e",
                "ansible_python_interpreter={{ ansible_playbook_python }}",
            ],
            cwd=boot.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if fails:
            assert proc.returncode != 0, f"site.yml of {boot.directory} was meant to fail:\n{proc.stdout}"
        else:
            assert proc.returncode == 0, f"site.yml of {boot.directory} failed:\n{proc.stdout}\n{proc.stderr}"
        boot.site_rc = proc.returncode
        boot.role = (probe / "role.txt").read_text().strip()
        boot.models = (probe / "models.txt").read_text()
        self.report(boot.directory, proc.returncode)

    def report(self, directory, exit_code):
        proc = subprocess.run(
            [str(SCRIPT), "--provisioned", directory, "--exit-code", str(exit_code)],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
        return proc.stderr

    def link(self, name):
        path = self.state / name
        return Path(os.path.realpath(path)).name if path.is_symlink() else None

    def checkouts(self):
        return sorted(path.name for path in (self.state / "checkouts").iterdir())

    def age_copies(self, seconds=LEASE_SECONDS + 60):
        """As if every copy had last been handed to a boot `seconds` ago."""
        then = time.time() - seconds
        for path in (self.state / "checkouts").iterdir():
            os.utime(path, (then, then))

    def leftovers(self):
        return sorted(
            path.name for path in self.state.iterdir() if path.name.startswith(("incoming-", "trash-", "gnupg-"))
        )


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
    """A pod whose last good copy is the probe's v1 commit (it booted and provisioned with it)."""
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    boot = pod.boot(run_site=True)
    assert (boot.rc, boot.commit, boot.role) == (0, v1, "v1"), boot.stderr
    assert pod.link("last-good") == v1
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
    assert pod.link("last-good") == good
    assert pod.leftovers() == []


def spy_tools(directory, log):
    """git and ansible-playbook that record their argv (as `ps` would show it) and run the real ones."""
    directory.mkdir(exist_ok=True)
    for name, real in (("git", shutil.which("git")), ("ansible-playbook", str(VENV_BIN / "ansible-playbook"))):
        (directory / name).write_text(f'#!/bin/sh\nprintf "%s %s\\n" "{name}" "$*" >> {log}\nexec {real} "$@"\n')
        (directory / name).chmod(0o755)
    return f"{directory}:{VENV_BIN}:{os.environ['PATH']}"


# -- updates, fallbacks, refs ---------------------------------------------------------------------


def test_new_commit_with_a_model_and_a_role_change_is_picked_up_on_next_boot(repo, pod):
    # Boot 1: the real collection tree passes the checks (site.yml parses, collection layout).
    first = pod.boot()
    assert first.rc == 0, first.stderr
    assert first.directory == str(pod.state / "checkouts" / repo.upstream)
    assert git("rev-parse", "HEAD", cwd=first.directory) == repo.upstream
    collection = Path(first.directory, "collections/ansible_collections/aiclipse/comfyui")
    assert collection.resolve() == Path(first.directory)
    assert "(first checkout)" in first.stderr
    # Its site.yml is not run here (it would provision this machine); say it ran cleanly.
    assert "it is the last good copy now" in pod.report(first.directory, 0)

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
    assert (pod.link("last-good"), pod.link("previous-good")) == (v2, v1)

    # Same commit again: reused as is. Copies handed out lately are kept (other boots may run
    # them); once that is long ago, only the last good copy and the one before it are kept.
    again = pod.boot()
    assert again.commit == v2 and "(unchanged)" in again.stderr
    assert pod.checkouts() == sorted([repo.upstream, v1, v2])
    pod.age_copies()
    assert pod.boot().commit == v2
    assert pod.checkouts() == sorted([v1, v2])
    # One line per boot, one per promotion (a clean start of the copy already last good adds none).
    assert len(pod.log_lines()) == 8


def test_unchanged_restart_only_asks_the_remote(tmp_path, repo, pod):
    """A restart with the commit already in the vault: one `git ls-remote` over git://, no clone,
    no fetch, no syntax check, the same directory."""
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    argv_log = tmp_path / "argv.log"
    path = spy_tools(tmp_path / "spy", argv_log)
    with GitDaemon(repo.root) as daemon:
        pod.settings["CONFIG_REPO"] = daemon.url("origin.git")
        first = pod.boot(run_site=True, PATH=path)
        assert (first.rc, first.commit) == (0, v1), first.stderr
        assert any(line.startswith("ansible-playbook --syntax-check") for line in argv_log.read_text().splitlines())
        argv_log.write_text("")
        objects_before = sorted(str(p.relative_to(pod.state)) for p in (pod.state / "objects.git").rglob("*"))
        for _restart in range(2):
            again = pod.boot(PATH=path)
            assert (again.rc, again.directory) == (0, first.directory), again.stderr
            assert f"commit {v1[:12]} (unchanged)" in again.stderr
        commands = argv_log.read_text().splitlines()
        assert commands and all(line.startswith("git -c safe.directory=* ls-remote ") for line in commands), commands
        assert len(commands) == 2
        assert sorted(str(p.relative_to(pod.state)) for p in (pod.state / "objects.git").rglob("*")) == objects_before
        assert pod.checkouts() == [v1]


def test_a_new_commit_costs_its_delta_not_the_whole_repository(tmp_path, committed_tree):
    """5,000 files (the issue's 724 KB repo): a one-file commit must not re-download them."""
    bulky = tmp_path / "bulky-tree"
    shutil.copytree(committed_tree, bulky, symlinks=True)
    rng = random.Random(22)
    for number in range(5000):
        path = bulky / "bulk" / f"d{number % 50:02d}" / f"f{number:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{rng.getrandbits(128):032x}\n" * 3)
    repo = ConfigRepo(tmp_path / "config", bulky)
    pod = Pod(tmp_path, repo)
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    with GitDaemon(repo.root) as daemon:
        proxy = CountingProxy(daemon.port)
        try:
            pod.settings["CONFIG_REPO"] = f"git://127.0.0.1:{proxy.port}/origin.git"
            first = pod.boot(run_site=True)
            assert first.commit == v1, first.stderr
            whole = proxy.downstream
            assert whole > 300_000, whole  # the bulk is on the wire once
            v2 = repo.commit(
                {
                    "bulk/d07/f0007.txt": "changed\n",
                    "roles/boot_probe/defaults/main.yml": "---\nboot_probe_version: v2\nboot_probe_fail: false\n",
                },
                "one file of the bulk and the probe's version",
            )
            proxy.reset()
            second = pod.boot(run_site=True)
            assert (second.commit, second.role) == (v2, "v2"), second.stderr
            assert proxy.downstream < whole / 20, (proxy.downstream, whole)
            assert Path(second.directory, "bulk/d07/f0007.txt").read_text() == "changed\n"
            assert git("rev-parse", "HEAD", cwd=second.directory) == v2
        finally:
            proxy.close()


def test_unreachable_repository_boots_the_last_good_copy_then_recovers(repo, pod, probed):
    repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2, not reachable yet")
    boot = pod.boot(run_site=True, CONFIG_REPO="file:///nonexistent/config.git")
    assert_fell_back(pod, boot, probed, "file:///nonexistent/config.git", "git ls-remote failed")
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
    # Commits the vault does not hold: by full id (fetched by id), abbreviated (found among the
    # branches), and one the repository does not have.
    assert pod.boot(CONFIG_BRANCH=repo.upstream).commit == repo.upstream
    side = repo.commit(probe_files("side", [MODEL_SD15]), "side build", branch="side")
    boot = pod.boot(run_site=True, CONFIG_BRANCH=side[:9])
    assert (boot.commit, boot.role) == (side, "side")
    boot = pod.boot(CONFIG_BRANCH="0123456789abcdef")
    assert_fell_back(pod, boot, side, "CONFIG_BRANCH '0123456789abcdef' is not a branch, tag or commit")


def test_broken_playbook_boots_the_last_good_copy_until_the_next_good_commit(repo, pod, probed):
    broken = {
        "site.yml is not YAML": (
            {"site.yml": "- name: [unclosed\n  hosts: all\n"},
            "syntax-check: [ERROR]: YAML parsing failed",
        ),
        "a role that does not exist": (
            {"site.yml": PROBE_SITE.replace("boot_probe", "no_such_role")},
            "syntax-check: [ERROR]: the role 'aiclipse.comfyui.no_such_role' was not found",
        ),
        "no collection link": ({"collections/ansible_collections/aiclipse/comfyui": None}, "is not the collection"),
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


def test_last_good_is_the_copy_that_provisioned_not_the_one_that_parsed(repo, pod, probed):
    # v2 parses (it passes every check) but fails when it runs.
    v2 = repo.commit(probe_files("v2", [MODEL_SD15], fail=True), "probe v2: parses, fails when run")
    boot = pod.boot(site_fails=True)
    assert (boot.commit, boot.role) == (v2, "v2")
    assert (pod.link("last-good"), pod.link("failed")) == (probed, v2)

    # The next boot does not run it again: the last good copy runs, and the line says why.
    boot = pod.boot(run_site=True)
    assert_fell_back(
        pod,
        boot,
        probed,
        f"commit {v2[:12]} failed to provision at ",
        "exit code 2",
        "not run again until CONFIG_BRANCH names another commit",
    )
    assert boot.role == "v1"

    # A later commit that does not parse falls back to the copy that provisioned, not to v2.
    v3 = repo.commit({"site.yml": "- name: [unclosed\n"}, "broken site.yml")
    boot = pod.boot(run_site=True)
    assert_fell_back(pod, boot, probed, f"commit {v3[:12]}: site.yml fails")
    assert boot.role == "v1"

    # A newer good commit is still tried, and only its clean start makes it the last good one.
    v4 = repo.commit(probe_files("v4", [MODEL_SD15]), "probe v4, fixed")
    boot = pod.boot()
    assert boot.commit == v4 and f"(updated from {probed[:12]})" in boot.stderr
    assert pod.link("last-good") == probed
    pod.run_site(boot)
    assert (pod.link("last-good"), pod.link("previous-good")) == (v4, probed)
    # The failed copy is kept apart for a look (pruning keeps what a link names).
    pod.age_copies()
    assert pod.boot().commit == v4
    assert pod.link("failed") == v2 and pod.checkouts() == sorted([probed, v2, v4])


@dataclass
class Signer:
    home: Path
    fingerprint: str


def make_signer(home, name):
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            f"{name} <{name}@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env, capture_output=True, text=True, check=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return Signer(home, fingerprint)


def export_key(signer, path):
    path.write_bytes(
        subprocess.run(
            ["gpg", "--batch", "--armor", "--export", signer.fingerprint],
            env={**os.environ, "GNUPGHOME": str(signer.home)},
            capture_output=True,
            check=True,
        ).stdout
    )
    return path


@pytest.fixture
def signers(tmp_path):
    """A maintainer key (trusted by the pod) and a stranger's key (not trusted)."""
    # gpg-agent's sockets live in GNUPGHOME and a socket path has at most 107 bytes, which a
    # pytest-xdist worker's tmp_path (popen-gwN/test_...) nearly uses up: short homes in /tmp.
    short = Path(tempfile.mkdtemp(prefix="gpg-"))
    made = [make_signer(short / "maintainer", "maintainer"), make_signer(short / "stranger", "stranger")]
    yield made
    for signer in made:
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(signer.home)}, check=False)
    shutil.rmtree(short, ignore_errors=True)


def test_verify_commit_accepts_only_commits_signed_by_a_trusted_key(tmp_path, repo, pod, signers):
    maintainer, stranger = signers
    keys = export_key(maintainer, tmp_path / "trusted-keys.asc")
    # Before checks were turned on the pod ran an unsigned commit; once they are on, that copy
    # is no fallback for a refused one, and the same commit is not taken as it is either.
    early = repo.commit(probe_files("early", [MODEL_SD15]), "probe, unsigned, before checks")
    assert pod.boot(run_site=True).commit == early
    pod.settings.update({"CONFIG_VERIFY_COMMIT": "true", "CONFIG_TRUSTED_KEYS": str(keys)})
    boot = pod.boot()
    assert boot.rc == 1 and boot.directory == ""
    assert (
        f"running nothing: no copy in the vault and no site.yml in the baked copy {pod.baked} "
        f"(not {early[:12]}: not signature-checked against CONFIG_TRUSTED_KEYS)" in boot.stderr
    )
    assert f"Failed to verify GPG signature of commit {early[:12]}" in boot.stderr

    signed = repo.commit(probe_files("signed", [MODEL_SD15]), "probe, signed", signer=maintainer)
    boot = pod.boot(run_site=True)
    assert (boot.rc, boot.commit) == (0, signed), boot.stderr
    assert "(unchanged)" in pod.boot().stderr  # checked once, then held

    repo.commit(probe_files("unsigned", [MODEL_SD15]), "probe, unsigned")
    boot = pod.boot(run_site=True)
    assert_fell_back(pod, boot, signed, "Failed to verify GPG signature", "CONFIG_VERIFY_COMMIT is on")
    assert boot.role == "signed"

    stranger_commit = repo.commit(
        probe_files("stranger", [MODEL_SD15]), "probe, signed by someone else", signer=stranger
    )
    boot = pod.boot()
    assert_fell_back(pod, boot, signed, "Failed to verify GPG signature")
    assert pod.checkouts() == sorted([early, signed])  # refused commits are never checked out

    # The check is what refused them: without it the same history is taken as it is.
    assert pod.boot(CONFIG_VERIFY_COMMIT="false").commit == stranger_commit

    resigned = repo.commit(probe_files("signed-again", [MODEL_SD15]), "probe, signed", signer=maintainer)
    assert pod.boot(run_site=True).commit == resigned

    # The maintainer's key is dropped from the trusted keys: the copies it signed stop counting.
    pod.settings["CONFIG_TRUSTED_KEYS"] = str(export_key(stranger, tmp_path / "other-keys.asc"))
    boot = pod.boot()
    assert boot.rc == 1 and "Failed to verify GPG signature" in boot.stderr, boot.stderr


def test_bad_verify_setting_counts_as_on_rather_than_skip_the_check(repo, pod, probed):
    repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2")
    boot = pod.boot(CONFIG_VERIFY_COMMIT="maybe")
    assert (boot.rc, boot.directory) == (1, "")
    assert "CONFIG_VERIFY_COMMIT='maybe' is not a boolean (use true or false)" in boot.stderr
    assert f"(not {probed[:12]}: not signature-checked against CONFIG_TRUSTED_KEYS)" in boot.stderr
    assert pod.link("last-good") == probed


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
    assert pod.boot(run_site=True).rc == 0
    boot = pod.boot(run_site=True, CONFIG_REPO="")
    assert boot.role == "baked"
    assert "CONFIG_REPO is not set" in boot.stderr


# -- bad input --------------------------------------------------------------------------------------

REFUSED_REPOS = [
    "--upload-pack=touch {mark}",
    "--upload-pack=touch${{IFS}}{mark}",
    "-u touch {mark}",
    "ext::sh -c touch% {mark}",
    "file:///nonexistent.git --upload-pack=touch {mark}",
    "ssh://-oProxyCommand=touch${{IFS}}{mark}/config.git",
    "-oProxyCommand=touch${{IFS}}{mark}:config.git",
    "fd::17",
    "relative/config.git",
]


def test_a_config_repo_git_could_read_as_an_option_or_a_command_is_refused_before_use(tmp_path, pod, probed):
    mark = tmp_path / "command-ran"
    for template in REFUSED_REPOS:
        boot = pod.boot(CONFIG_REPO=template.format(mark=mark))
        assert not mark.exists(), f"a command in CONFIG_REPO={template!r} ran"
        assert_fell_back(pod, boot, probed, "CONFIG_REPO is not a git URL this updater accepts")
        assert str(mark) not in boot.stderr  # an invalid URL is not echoed (it may carry a token)


def test_a_newline_in_config_branch_cannot_forge_a_log_line(pod, probed):
    forged = "aiclipse-config-update: running file:///attacker.git@main commit 0123456789ab (unchanged)"
    boot = pod.boot(CONFIG_BRANCH=f"main\n{forged}")  # boot() asserts one line on stderr
    assert_fell_back(pod, boot, probed, "is not a branch, tag or commit name")
    assert "main\\naiclipse-config-update: running file:///attacker.git" in boot.stderr
    assert not any(line.startswith(forged) or line.endswith(forged) for line in pod.log_lines())
    assert not any(line.startswith("aiclipse-config-update") for line in pod.log_lines())


# -- faults -----------------------------------------------------------------------------------------


def assert_none_left(text):
    """No live process whose command line holds text; any found is ended (the test started it)."""
    left = processes_with(text)
    for line in left:
        with contextlib.suppress(OSError):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
    assert left == []


def test_stalled_remote_is_cut_off_and_leaves_no_process_behind(tmp_path, repo, pod, probed):
    # 1. A server that accepts and never answers: the ref lookup itself hangs. (The timeout leaves
    #    an ansible-driven git time to start on a busy machine; git itself starts at once.)
    with SilentServer() as silent:
        url = f"http://127.0.0.1:{silent.port}/config.git"
        started = time.monotonic()
        boot = pod.boot(CONFIG_REPO=url, CONFIG_UPDATE_TIMEOUT="6")
        assert time.monotonic() - started < 60
        assert_fell_back(pod, boot, probed, "git ls-remote did not finish within 6 s (CONFIG_UPDATE_TIMEOUT)")
        assert_none_left(f"127.0.0.1:{silent.port}")
    # 2. Smart HTTP that answers the ref lookup and hangs on the pack: the fetch is cut off.
    repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2")
    with SmartHttpGit(repo.root, stall_fetch=True) as server:
        boot = pod.boot(CONFIG_REPO=server.url("origin.git"), CONFIG_UPDATE_TIMEOUT="6")
        assert_fell_back(pod, boot, probed, "git fetch did not finish within 6 s (CONFIG_UPDATE_TIMEOUT)")
        assert_none_left(f"127.0.0.1:{server.port}")
    # 3. An ssh that leaves a process of its own behind (as ssh's ControlPersist master does) and
    #    hangs: that process does not outlive the updater either.
    marker = f"2{random.randint(10, 99)}.{random.randint(100000, 999999)}"
    ssh = tmp_path / "ssh-that-daemonizes"
    ssh.write_text(f"#!/bin/sh\nsetsid sleep {marker} </dev/null >/dev/null 2>&1 &\nexec sleep 1{marker}\n")
    ssh.chmod(0o755)
    boot = pod.boot(CONFIG_REPO="ssh://git@127.0.0.1:1/config.git", CONFIG_UPDATE_TIMEOUT="6", GIT_SSH_COMMAND=str(ssh))
    assert_fell_back(pod, boot, probed, "did not finish within 6 s")
    assert_none_left(f"sleep {marker}")
    assert_none_left(f"sleep 1{marker}")
    assert pod.checkouts() == [probed]


def test_a_fetch_killed_half_way_leaves_nothing_that_blocks_the_next(repo, pod, probed):
    v2 = repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2")
    with SmartHttpGit(repo.root, stall_fetch=True) as server:
        boot = pod.boot(CONFIG_REPO=server.url("origin.git"), CONFIG_UPDATE_TIMEOUT="3")
        assert_fell_back(pod, boot, probed, "git fetch did not finish within 3 s")
    # What a git killed at any point may leave in the store (its lock files, a half pack).
    store = pod.state / "objects.git"
    for rel in (
        "shallow.lock",
        "packed-refs.lock",
        "config.lock",
        "refs/aiclipse/incoming.lock",
        "objects/pack/tmp_pack_killed",
    ):
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_text("")
    boot = pod.boot(run_site=True)
    assert (boot.rc, boot.commit, boot.role) == (0, v2, "v2"), boot.stderr
    assert not list(store.rglob("*.lock"))


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 96 MB ext4 with 2,048 inodes, loop-mounted (needs root): a vault that runs out of inodes."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop filesystem needs root")
    image = tmp_path / "vault.img"
    mount = tmp_path / "small"
    mount.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(96 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-N", "2048", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True, capture_output=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill_inodes(directory):
    """Create empty files until the filesystem has no inode left; return them."""
    directory.mkdir()
    made = []
    while True:
        path = directory / f"f{len(made)}"
        try:
            path.touch()
        except OSError as exc:
            assert exc.errno == 28, exc
            return made
        made.append(path)


def test_a_vault_out_of_inodes_falls_back_to_the_last_good_copy(tmp_path, repo, tiny_filesystem):
    pod = Pod(tmp_path, repo)
    pod.vault = tiny_filesystem / "aiclipse"
    pod.state = pod.vault / ".state" / "config"
    pod.log = pod.vault / "logs" / "config-update.log"
    v1, v2, v3 = (repo.commit(probe_files(version, [MODEL_SD15]), f"probe {version}") for version in ("v1", "v2", "v3"))
    for commit in (v1, v2, v3):
        boot = pod.boot(CONFIG_BRANCH=commit)
        assert boot.commit == commit, boot.stderr
        pod.report(boot.directory, 0)  # as if its site.yml had run cleanly
    pod.age_copies()
    assert pod.boot(CONFIG_BRANCH=v3).commit == v3
    assert pod.checkouts() == sorted([v2, v3])  # v1's copy is gone, its objects are still stored
    fillers = fill_inodes(tiny_filesystem / "filler")

    # Back to v1: no fetch, but its copy needs a new directory, and there is no inode for one.
    boot = pod.boot(CONFIG_BRANCH=v1)
    assert_fell_back(
        pod, boot, v3, "cannot write to the vault (No space left on device", "(free disk space or inodes in the vault)"
    )
    # A new commit: git runs out first (objects, locks), then the checkout, and so on. Inodes are
    # freed a few at a time; every step that runs out boots the last good copy and says why.
    v4 = repo.commit(probe_files("v4", [MODEL_SD15, MODEL_VAE]), "probe v4")
    freed = 0
    for step in (0, 1, 1, 1, 1, 2, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        for _filler in range(step):
            if fillers:
                fillers.pop().unlink()
                freed += 1
        boot = pod.boot()
        if boot.commit == v4:
            break
        assert_fell_back(pod, boot, v3, "No space left on device")
        assert Path(boot.directory, "site.yml").is_file()
    else:
        pytest.fail(f"v4 never ran with {freed} inodes freed")
    assert pod.leftovers() == []
    for filler in fillers:
        filler.unlink()
    pod.run_site(boot)
    assert (boot.role, pod.link("last-good")) == ("v4", v4)


def test_concurrent_boots_with_different_branches_never_lose_a_handed_copy(repo, pod):
    commits = {
        branch: repo.commit(probe_files(branch, [MODEL_SD15]), branch, branch=branch)
        for branch in ("alpha", "beta", "gamma")
    }
    procs = {branch: pod.start(CONFIG_BRANCH=branch) for branch in commits}
    handed = {}
    for branch, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        handed[branch] = out.strip()
    # Every boot then runs what it was handed: none of it was deleted by another boot.
    for branch, directory in handed.items():
        assert Path(directory).name == commits[branch]
        boot = Boot(0, directory, "")
        pod.run_site(boot)
        assert boot.role == branch
    assert pod.leftovers() == []


# -- credentials --------------------------------------------------------------------------------------


def test_a_token_over_smart_http_is_never_written_down_even_with_a_raw_at_sign(tmp_path, repo, pod):
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    secret = "left@RIGHT-" + os.urandom(6).hex()  # a password with a raw '@'
    argv_log = tmp_path / "argv.log"
    path = spy_tools(tmp_path / "spy", argv_log)
    with SmartHttpGit(repo.root, password=secret) as server:
        url = server.url("origin.git", user="bot", password=secret)
        boot = pod.boot(run_site=True, CONFIG_REPO=url, PATH=path)
        assert (boot.rc, boot.commit) == (0, v1), boot.stderr
        assert f"running http://***@127.0.0.1:{server.port}/origin.git@main commit" in boot.stderr
        wrong = pod.boot(CONFIG_REPO=server.url("origin.git", user="bot", password="left@wrong"))
        assert_fell_back(pod, wrong, v1, "http://***@127.0.0.1", "git ls-remote failed")
        basic = base64.b64encode(f"bot:{secret}".encode()).decode()
        assert f"Basic {basic}" in [r["authorization"] for r in server.requests]
    assert "ls-remote" in argv_log.read_text() and "fetch" in argv_log.read_text()
    secret_tail = secret.split("@")[1]
    for output in (boot.stderr, wrong.stderr, boot.directory, argv_log.read_text()):
        assert secret_tail not in output and basic not in output and "left@" not in output
    for path_ in pod.vault.rglob("*"):
        if path_.is_file() and not path_.is_symlink():
            assert secret_tail.encode() not in path_.read_bytes(), f"token written to {path_}"


def test_a_redirect_to_another_host_never_receives_the_token(tmp_path, repo, pod, probed):
    """The origin takes the credentials, then redirects to another host that serves the
    repository publicly (a moved or hijacked repository): git follows, and no request it makes
    there carries the token (an http.extraHeader was sent along with the protocol's POST)."""
    secret = "tok-" + os.urandom(8).hex()
    publish(GitRepo(repo.bare), tmp_path / "served", name="config.git")
    with SmartHttpGit(tmp_path / "served") as elsewhere, RedirectingServer(elsewhere.url("")) as hop:
        boot = pod.boot(CONFIG_REPO=hop.url("config.git", "bot", secret))
        assert any(r["authorization"] for r in hop.requests), "the origin never got the credentials"
        assert elsewhere.requests, "git did not follow the redirect"
        assert not [r for r in elsewhere.requests if r["authorization"]], elsewhere.requests
    assert (boot.rc, boot.commit) == (0, probed), boot.stderr
    assert secret not in boot.stderr


def test_dumb_http_with_a_token_works_by_commit_and_by_branch(tmp_path, repo, pod):
    """git's dumb HTTP protocol serves neither shallow fetches nor commits by id: full history."""
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    served = tmp_path / "served"
    served.mkdir()
    shutil.copytree(repo.bare, served / "config.git")
    git("update-server-info", cwd=served / "config.git")
    secret = "tok-" + os.urandom(8).hex()  # made here: this file is in the fetched tree too
    with NginxOrigin(served) as origin:
        url = f"http://user:{secret}@127.0.0.1:{origin.port}/public/config.git"
        boot = pod.boot(CONFIG_REPO=url, CONFIG_BRANCH=v1[:10])
        assert (boot.rc, boot.commit) == (0, v1), boot.stderr
        assert "http://***@127.0.0.1" in boot.stderr
        # This location never asks (no 401), so git never hands out the credentials.
        assert origin.log_lines() and all('auth="-"' in line for line in origin.log_lines())
        v2 = repo.commit(probe_files("v2", [MODEL_SD15]), "probe v2")
        shutil.rmtree(served / "config.git")
        shutil.copytree(repo.bare, served / "config.git")
        git("update-server-info", cwd=served / "config.git")
        boot = pod.boot(run_site=True, CONFIG_REPO=url)
        assert (boot.rc, boot.commit, boot.role) == (0, v2, "v2"), boot.stderr
    for path in pod.vault.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), f"token written to {path}"


# -- the entrypoint ---------------------------------------------------------------------------------


def test_the_entrypoint_runs_the_updated_checkout_and_reports_how_it_went(tmp_path, repo, pod):
    v1 = repo.commit(probe_files("v1", [MODEL_SD15]), "probe v1")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "aiclipse-config-update").symlink_to(SCRIPT)
    # As in the example image: a global ANSIBLE_CONFIG (its cfg asks for YAML results), plus a
    # pod that prefers YAML output too; neither may confuse the update or the run.
    env = pod.env(
        PATH=f"{tools}:{VENV_BIN}:{os.environ['PATH']}",
        AUTO_UPDATE="true",
        AICLIPSE_VENV=str(VENV_BIN.parent),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
    )

    def entrypoint():
        # Arguments replace ComfyUI after provisioning: `true` ends the boot once site.yml ran.
        proc = subprocess.run(
            ["bash", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stderr, (pod.vault / "probe" / "role.txt").read_text().strip()

    err, role = entrypoint()
    assert f"aiclipse-config-update: running {repo.url}@main commit {v1[:12]} (first checkout)" in err
    assert f"aiclipse-config-update: commit {v1[:12]} provisioned cleanly" in err
    assert role == "v1" and pod.link("last-good") == v1

    v2 = repo.commit(probe_files("v2", [MODEL_SD15], fail=True), "probe v2: fails when run")
    err, role = entrypoint()
    assert role == "v2" and "PROVISIONING FAILED" in err
    assert f"aiclipse-config-update: commit {v2[:12]} failed to provision" in err
    assert (pod.link("last-good"), pod.link("failed")) == (v1, v2)

    err, role = entrypoint()
    assert role == "v1" and "PROVISIONING FAILED" not in err
    assert f"commit {v2[:12]} failed to provision at " in err and f"running the last good copy {v1[:12]}" in err

    v3 = repo.commit(probe_files("v3", [MODEL_SD15]), "probe v3")
    err, role = entrypoint()
    assert role == "v3" and pod.link("last-good") == v3
