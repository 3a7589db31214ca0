"""The pod entrypoint (roles/launcher/files/aiclipse-entrypoint), run for real on this host.

Each test gives the entrypoint its own workspace, a small config directory (site.yml +
ansible.cfg using the collection's launcher role from the checkout, plus a provisioning step
that fails on demand) and a ComfyUI directory whose main.py records how it was started. Real
bash, real ansible-playbook. ComfyUI runs as the entrypoint's child, which passes a stop on to
it and to the model downloads that hold a run lock (a stand-in process holds one here).
The full image (bake + every role, tini, podman stop) is tested in test_image_build.py.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from harness.git_repos import FAKE_MAIN_PY
from harness.net import free_port, wait_for_port
from harness.paths import REPO, VENV

ENTRYPOINT = REPO / "roles" / "launcher" / "files" / "aiclipse-entrypoint"

RECORDING_MAIN_PY = textwrap.dedent("""\
    import json, os, sys
    record = {"argv": sys.argv, "cwd": os.getcwd(), "pid": os.getpid(), "executable": sys.executable,
              "environ": {k: v for k, v in os.environ.items() if k.startswith("COMFYUI_")}}
    with open(os.environ["FAKE_COMFYUI_ARGV_FILE"], "w", encoding="utf-8") as handle:
        json.dump(record, handle)
""")

SITE_YML = textwrap.dedent("""\
    ---
    - name: Test pod start
      hosts: pods
      gather_facts: false
      vars:
        launcher_python: "{{ lookup('ansible.builtin.env', 'TEST_COMFY_PYTHON') }}"
        launcher_listen: 127.0.0.1
        launcher_port: "{{ lookup('ansible.builtin.env', 'TEST_COMFY_PORT', default='8188') }}"
      tasks:
        - name: Marker of the config copy in use
          ansible.builtin.debug:
            msg: "config copy: MARKER"
        - name: Install custom nodes (stand-in for a role that can fail)
          ansible.builtin.fail:
            msg: "node ComfyUI-Broken: git clone failed"
          when: lookup('ansible.builtin.env', 'TEST_FAIL_PROVISION', default='') == '1'
        - name: Fail with the message the test gives (long, several lines)
          ansible.builtin.fail:
            msg: "{{ lookup('ansible.builtin.env', 'TEST_FAIL_MESSAGE') }}"
          when: lookup('ansible.builtin.env', 'TEST_FAIL_MESSAGE', default='') != ''
        - name: Fail with a secret in a hidden result
          ansible.builtin.command: sh -c 'echo "the token is $TEST_SECRET" >&2; exit 3'
          changed_when: false
          no_log: true
          when: lookup('ansible.builtin.env', 'TEST_SECRET', default='') != ''
        - name: A long provisioning step (stand-in for a big node install)
          ansible.builtin.shell: touch "$TEST_SLOW_PROVISION" && sleep 120
          changed_when: false
          when: lookup('ansible.builtin.env', 'TEST_SLOW_PROVISION', default='') != ''
        - name: Write the launch file
          ansible.builtin.import_role:
            name: aiclipse.comfyui.launcher
          tags: [launcher]
""")


def make_config_dir(path, marker):
    path.mkdir(parents=True)
    (path / "ansible.cfg").write_text(
        textwrap.dedent(f"""\
        [defaults]
        collections_path = {REPO / "collections"}
        inventory = {REPO / "inventories" / "local"}
        stdout_callback = ansible.builtin.default
        callback_result_format = yaml
        retry_files_enabled = false
        """)
    )
    (path / "site.yml").write_text(SITE_YML.replace("MARKER", marker))
    return path


class Pod:
    """One simulated pod: workspace, baked config, ComfyUI stand-in, and a way to boot it."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.root = tmp_path / "workspace"
        self.vault = self.root / "aiclipse"
        self.comfyui = self.vault / "ComfyUI"
        self.comfyui.mkdir(parents=True)
        (self.comfyui / "main.py").write_text(RECORDING_MAIN_PY)
        self.baked = make_config_dir(tmp_path / "baked", "baked")
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.record = tmp_path / "argv.json"

    def env(self, **env):
        run_env = {
            "PATH": f"{self.bin}:{VENV / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.tmp),
            "AICLIPSE_ROOT": str(self.root),
            "AICLIPSE_CONFIG_DIR": str(self.baked),
            "AICLIPSE_VENV": str(VENV),
            "TEST_COMFY_PYTHON": str(VENV / "bin" / "python"),
            "FAKE_COMFYUI_ARGV_FILE": str(self.record),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
        }
        run_env.update(env)
        return run_env

    def start(self, *args, **env):
        if self.record.exists():
            self.record.unlink()
        return subprocess.Popen(
            [str(ENTRYPOINT), *args], env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def boot(self, *args, **env):
        proc = self.start(*args, **env)
        out, err = proc.communicate(timeout=300)
        started = json.loads(self.record.read_text()) if self.record.exists() else None
        return Boot(proc.pid, proc.returncode, out, err, started)

    def fake_config_update(self, script):
        tool = self.bin / "aiclipse-config-update"
        tool.write_text("#!/bin/sh\n" + script)
        tool.chmod(0o755)


class Boot:
    def __init__(self, pid, rc, out, err, started):
        self.pid, self.rc, self.out, self.err, self.started = pid, rc, out, err, started

    @property
    def comfy_argv(self):
        assert self.started, f"ComfyUI was not started (rc={self.rc}):\n{self.out}\n{self.err}"
        return self.started["argv"]


BASE = ["main.py", "--listen", "127.0.0.1", "--port", "8188"]


@pytest.fixture
def pod(tmp_path):
    return Pod(tmp_path)


def with_base(pod, args):
    """ComfyUI's argv: the base, the vault as --base-directory, then COMFY_ARGS."""
    return BASE + ["--base-directory", str(pod.vault)] + list(args)


def test_boot_starts_comfyui_with_quoted_args_and_the_vault_as_base_directory(pod):
    boot = pod.boot(
        COMFY_ARGS='--output-directory "/workspace/my outputs" --title \'a "b"\' $HOME *', HF_TOKEN="hf_secret_value"
    )
    assert boot.rc == 0, boot.err
    assert boot.comfy_argv == with_base(
        pod, ["--output-directory", "/workspace/my outputs", "--title", 'a "b"', "$HOME", "*"]
    )
    # A child of the entrypoint (which stays in front of it to pass a stop on), in ComfyUI's directory.
    assert boot.started["pid"] != boot.pid
    assert boot.started["cwd"] == str(pod.comfyui)
    # ComfyUI-Manager's helpers learn where the code and the folders are.
    assert boot.started["environ"]["COMFYUI_PATH"] == str(pod.comfyui)
    assert boot.started["environ"]["COMFYUI_FOLDERS_BASE_PATH"] == str(pod.vault)
    assert boot.started["executable"] == str(VENV / "bin" / "python")
    assert "config copy: baked" in boot.out
    assert "hf_secret_value" not in boot.out + boot.err
    # The provisioning output is kept where a person can read it.
    assert "PLAY RECAP" in (pod.vault / "logs" / "provision.log").read_text()


@pytest.mark.parametrize("sage, expected", [("true", ["--use-sage-attention"]), ("false", []), (None, [])])
def test_empty_comfy_args_and_sage_attention(pod, sage, expected):
    env = {"COMFY_ARGS": ""}
    if sage is not None:
        env["ENABLE_SAGE_ATTENTION"] = sage
    assert pod.boot(**env).comfy_argv == with_base(pod, expected)


def test_sage_attention_ignored_when_comfy_args_is_set(pod):
    boot = pod.boot(COMFY_ARGS="--lowvram", ENABLE_SAGE_ATTENTION="true")
    assert boot.comfy_argv == with_base(pod, ["--lowvram"])


def test_the_pods_own_comfyui_path_wins_over_the_launch_file(pod):
    boot = pod.boot(COMFY_ARGS="--x", COMFYUI_PATH="/somewhere/else")
    assert boot.started["environ"]["COMFYUI_PATH"] == "/somewhere/else"
    assert boot.started["environ"]["COMFYUI_FOLDERS_BASE_PATH"] == str(pod.vault)


def test_failed_provisioning_is_named_and_comfyui_still_starts_with_this_boots_args(pod):
    pod.boot(COMFY_ARGS="--old")
    boot = pod.boot(COMFY_ARGS="--new 'x y'", TEST_FAIL_PROVISION="1")
    assert boot.rc == 0
    assert "PROVISIONING FAILED" in boot.err
    assert "Install custom nodes (stand-in for a role that can fail)" in boot.err
    assert "node ComfyUI-Broken: git clone failed" in boot.err
    # The launcher ran after the failure, so this boot's COMFY_ARGS apply, not the last boot's.
    assert boot.comfy_argv == with_base(pod, ["--new", "x y"])


def test_start_on_failure_false_stops_the_container(pod):
    boot = pod.boot(TEST_FAIL_PROVISION="1", AICLIPSE_START_ON_FAILURE="false")
    assert boot.rc != 0
    assert boot.started is None
    assert "not starting ComfyUI" in boot.err


def test_bad_comfy_args_fall_back_to_the_last_good_command_line(pod):
    assert pod.boot(COMFY_ARGS="--good").rc == 0
    boot = pod.boot(COMFY_ARGS='--title "unclosed')
    assert "PROVISIONING FAILED" in boot.err
    assert "COMFY_ARGS cannot be split" in boot.err
    assert "last good one" in boot.err
    assert boot.comfy_argv == with_base(pod, ["--good"])


def test_bad_comfy_args_on_a_first_boot_is_a_clear_stop(pod):
    boot = pod.boot(COMFY_ARGS="--title 'unclosed")
    assert boot.rc != 0 and boot.started is None
    assert "COMFY_ARGS cannot be split" in boot.err
    assert "cannot start ComfyUI" in boot.err


def test_auto_update_runs_the_copy_the_updater_prints(pod):
    fresh = make_config_dir(pod.tmp / "fresh", "fresh")
    pod.fake_config_update(f"echo 'aiclipse-config-update: running fresh' >&2\necho {fresh}\n")
    boot = pod.boot(COMFY_ARGS="--x")
    assert "config copy: fresh" in boot.out and "config copy: baked" not in boot.out
    assert boot.comfy_argv == with_base(pod, ["--x"])

    off = pod.boot(COMFY_ARGS="--x", AUTO_UPDATE="false")
    assert "config copy: baked" in off.out


@pytest.mark.parametrize("script", ["exit 1\n", "echo /nonexistent\n"])
def test_auto_update_failure_falls_back_to_the_baked_copy(pod, script):
    pod.fake_config_update(script)
    boot = pod.boot(COMFY_ARGS="--x")
    assert "config copy: baked" in boot.out
    assert "using the baked copy" in boot.err
    assert boot.comfy_argv == with_base(pod, ["--x"])


def test_missing_updater_uses_the_baked_copy(pod):
    boot = pod.boot(COMFY_ARGS="--x")
    assert "aiclipse-config-update is not installed" in boot.err
    assert "config copy: baked" in boot.out


def test_container_command_replaces_comfyui_after_provisioning(pod):
    marker = pod.tmp / "ran"
    boot = pod.boot("sh", "-c", f"echo $$ > {marker}", COMFY_ARGS="--x")
    assert boot.rc == 0 and boot.started is None
    assert int(marker.read_text()) == boot.pid
    assert (pod.vault / ".state" / "launch.json").exists()


def test_the_failure_summary_names_the_whole_message_of_every_line(pod):
    """ansible's human output folds a long message over YAML lines; the summary must not cut it."""
    message = "clone of ComfyUI-Broken failed: " + "word " * 60 + "\nsecond line\nthe real reason: DISK_FULL_AT_THE_END"
    boot = pod.boot(COMFY_ARGS="--x", TEST_FAIL_MESSAGE=message)
    assert boot.rc == 0 and "PROVISIONING FAILED" in boot.err
    summary = boot.err[boot.err.index("PROVISIONING FAILED") :]
    assert (
        "Fail with the message the test gives (long, several lines) [localhost] -> clone of ComfyUI-Broken" in summary
    )
    assert "word " * 60 in summary
    assert "      second line\n      the real reason: DISK_FULL_AT_THE_END" in summary
    assert boot.comfy_argv == with_base(pod, ["--x"])
    record = pod.vault / ".state" / "provision-failures.json"
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    doc = json.loads(record.read_text())
    assert doc["complete"] is True and doc["failures"][0]["message"] == message


def test_a_hidden_result_stays_hidden_in_the_summary(pod):
    boot = pod.boot(COMFY_ARGS="--x", TEST_SECRET="hf_HIDDEN_token_123")
    assert "PROVISIONING FAILED" in boot.err
    assert "Fail with a secret in a hidden result [localhost] -> the output has been hidden" in boot.err
    assert "hf_HIDDEN_token_123" not in boot.out + boot.err
    assert "hf_HIDDEN_token_123" not in (pod.vault / ".state" / "provision-failures.json").read_text()


def test_a_playbook_that_does_not_parse_is_named_from_ansibles_own_error(pod):
    (pod.baked / "site.yml").write_text("- name: Broken\n  hosts: pods\n  tasks: {{ nope\n")
    boot = pod.boot(COMFY_ARGS="--x")
    assert "PROVISIONING FAILED" in boot.err
    summary = boot.err[boot.err.index("PROVISIONING FAILED") :]
    assert "ERROR" in summary and "no failed task recorded" not in summary, summary


CALLBACK_PLAY = textwrap.dedent("""\
    - name: Failures of every kind
      hosts: localhost
      gather_facts: false
      tasks:
        - name: Ignored failure
          ansible.builtin.fail:
            msg: ignored, not a provisioning failure
          ignore_errors: true
        - name: Handled by a rescue
          block:
            - name: Fails inside a block
              ansible.builtin.fail:
                msg: rescued
          rescue:
            - name: Rescue
              ansible.builtin.debug:
                msg: handled
        - name: Loop with failing items
          ansible.builtin.command: "sh -c 'echo item {{ item }} broke >&2; exit {{ item }}'"
          loop: [0, 3]
          changed_when: false
    """)


def test_the_failure_callback_records_what_failed_and_nothing_else(tmp_path):
    """Run straight through ansible-playbook: ignored failures are left out, a rescued one is
    marked, a loop's failed item is named with its stderr."""
    play = tmp_path / "play.yml"
    play.write_text(CALLBACK_PLAY)
    record = tmp_path / "state" / "failures.json"
    env = {
        "PATH": f"{VENV / 'bin'}:/usr/bin:/bin",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CALLBACKS_ENABLED": "aiclipse.comfyui.failure_summary",
        "AICLIPSE_FAILURE_SUMMARY": str(record),
        "ANSIBLE_LOCALHOST_WARNING": "0",
    }
    proc = subprocess.run(
        [str(VENV / "bin" / "ansible-playbook"), "-c", "local", "-i", "localhost,", str(play)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout
    doc = json.loads(record.read_text())
    assert doc["complete"] is True
    tasks = [(failure["task"], failure["rescued_by_block"]) for failure in doc["failures"]]
    assert tasks == [("Fails inside a block", True), ("Loop with failing items", False)]
    loop = doc["failures"][1]["message"]
    assert "item 3: non-zero return code\nitem 3 broke" in loop and "item 0" not in loop, loop
    assert oct(record.stat().st_mode & 0o777) == "0o600" and oct(record.parent.stat().st_mode & 0o777) == "0o700"


# -- stop: SIGTERM / SIGINT reach ComfyUI and the running downloads ----------------------------

# Stands in for aria2_batch / r2_fetch while they run: the PID in <state>/<name>.run.lock, the lock
# held, and on SIGTERM a short clean stop (the real ones save aria2's control files or flush the R2
# journal), recorded in a marker file.
DOWNLOADER = textwrap.dedent("""\
    import fcntl, os, signal, sys, time
    lock, marker = sys.argv[1], sys.argv[2]
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\\\\n" % os.getpid())

    def stop(signum, frame):
        time.sleep(0.3)
        with open(marker, "w") as handle:
            handle.write("stopped on %d" % signum)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    open(marker + ".ready", "w").close()
    while True:
        time.sleep(1)
""")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_for_file(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the entrypoint exited early ({proc.returncode})"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """An entrypoint started in the background, its output in files (no pipe to fill up)."""

    def __init__(self, pod, *args, **env):
        self.out_path = pod.tmp / "entrypoint.out"
        self.err_path = pod.tmp / "entrypoint.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            # A pytest-xdist worker ignores SIGINT, a child inherits that, and bash cannot trap a
            # signal ignored on entry: start the entrypoint as a pod's runtime would, SIGINT default.
            self.proc = subprocess.Popen(
                [str(ENTRYPOINT), *args],
                env=pod.env(**env),
                stdout=out,
                stderr=err,
                preexec_fn=_default_sigint,
            )

    def stop(self, signum, timeout=60):
        """Send signum; return (exit code, seconds to exit). A generous timeout, not a benchmark."""
        start = time.monotonic()
        self.proc.send_signal(signum)
        rc = self.proc.wait(timeout=timeout)
        return rc, time.monotonic() - start

    @property
    def out(self):
        return self.out_path.read_text()

    @property
    def err(self):
        return self.err_path.read_text()


@pytest.fixture
def serving_pod(pod):
    """The pod with the stand-in ComfyUI that keeps serving and installs no SIGTERM handler."""
    (pod.comfyui / "main.py").write_text(FAKE_MAIN_PY)
    pod.port = free_port()
    started = []
    yield pod, started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_downloader(pod, started, name="aria2_batch"):
    state = pod.vault / ".state" / "models"
    state.mkdir(parents=True, exist_ok=True)
    marker = pod.tmp / f"{name}.stopped"
    proc = subprocess.Popen(
        [sys.executable, "-c", DOWNLOADER, str(state / f"{name}.run.lock"), str(marker)], start_new_session=True
    )
    started.append(proc)
    wait_for_file(pod.tmp / f"{name}.stopped.ready", proc)
    return proc, marker


def test_sigterm_stops_comfyui_and_the_running_download_and_nothing_else(serving_pod):
    pod, started = serving_pod
    downloader, marker = start_downloader(pod, started)
    # A lock a killed run left behind, naming a PID that now belongs to someone else.
    bystander = subprocess.Popen(["sleep", "600"])
    started.append(bystander)
    (pod.vault / ".state" / "models" / "r2_fetch.run.lock").write_text(f"{bystander.pid}\n")

    run = Running(pod, COMFY_ARGS="", TEST_COMFY_PORT=str(pod.port), FAKE_COMFYUI_SERVE="1", AICLIPSE_STOP_TIMEOUT="30")
    wait_for_port(pod.port, timeout=120, process=run.proc)
    comfy_pid = json.loads(pod.record.read_text())["pid"]
    assert comfy_pid != run.proc.pid and pid_alive(comfy_pid)

    rc, seconds = run.stop(signal.SIGTERM)
    # ComfyUI died of the SIGTERM it was given (128 + 15), long before the 30 s grace ran out.
    assert rc == 143, run.err
    assert seconds < 20, f"the stop took {seconds:.1f}s"
    assert not pid_alive(comfy_pid)
    assert downloader.wait(timeout=10) == 0
    assert marker.read_text() == "stopped on 15"
    assert bystander.poll() is None, "a PID from a stale lock file was signalled"
    assert "received SIGTERM: stopping ComfyUI" in run.err
    assert f"stopping the model download running as pid {downloader.pid}" in run.err


def test_sigint_reaches_comfyui_which_stops_the_way_it_does_on_ctrl_c(serving_pod):
    pod, dummy = serving_pod
    run = Running(pod, COMFY_ARGS="", TEST_COMFY_PORT=str(pod.port), FAKE_COMFYUI_SERVE="1")
    wait_for_port(pod.port, timeout=120, process=run.proc)
    comfy_pid = json.loads(pod.record.read_text())["pid"]
    rc, dummy = run.stop(signal.SIGINT)
    # A background child of a script would ignore SIGINT; ComfyUI saw it (KeyboardInterrupt).
    assert rc == 0, run.err
    assert "Stopped server" in run.out
    assert not pid_alive(comfy_pid)


def test_a_stop_during_provisioning_ends_it_and_comfyui_never_starts(serving_pod):
    pod, started = serving_pod
    downloader, marker = start_downloader(pod, started, "r2_fetch")
    busy = pod.tmp / "provisioning-is-busy"
    run = Running(pod, COMFY_ARGS="", TEST_COMFY_PORT=str(pod.port), TEST_SLOW_PROVISION=str(busy))
    wait_for_file(busy, run.proc)
    rc, seconds = run.stop(signal.SIGTERM)
    assert rc == 143, run.err
    assert seconds < 20, f"the stop waited for provisioning ({seconds:.1f}s)"
    assert "stopped during provisioning" in run.err
    assert not pod.record.exists(), "ComfyUI was started after the stop"
    assert downloader.wait(timeout=10) == 0 and marker.read_text() == "stopped on 15"
