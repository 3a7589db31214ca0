"""rp_env_export through real ansible: idempotence, check/diff mode, masking, bad input."""

import os
import stat
import subprocess

from harness.ansible_run import ansible_env, module_argv, run_module
from harness.paths import REPO

SECRETS = {
    "HF_TOKEN": "hf_Secret_Value_1234567890",
    "CIVITAI_TOKEN": "civitai-secret-0987654321",
    "R2_ACCESS_KEY_ID": "r2-access-key-id-5555",
    "R2_SECRET_ACCESS_KEY": "r2/secret+access/key==9999",
}
COMFY_ARGS = "--lowvram --preview-method 'auto' \"$HOME\" `x` \\ ünï"


def pod_env(**extra):
    """A pod-like environment for the module process: settings plus secrets, no stray ones."""
    env = {name: "" for name in ("RUNPOD_POD_ID", "PYTHONPATH", "LD_LIBRARY_PATH", "TEMPLATE_TYPE")}
    env.update(SECRETS, COMFY_ARGS=COMFY_ARGS, R2_BUCKET="models")
    env.update(extra)
    return env


def sourced(path, name, shell="dash"):
    out = subprocess.run(
        ["env", "-i", shell, "-c", '. "$1" && printenv "$2"', "sh", str(path), name],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return out.stdout


def run_module_vvv(args, env, diff=True):
    """The module at -vvv with the default callback: everything a person could ever see."""
    proc = subprocess.run(
        module_argv("rp_env_export", args, "-vvv", *(["--diff"] if diff else [])),
        cwd=REPO,
        env=ansible_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stdout + proc.stderr


def assert_no_secret(*texts):
    for text in texts:
        for name, value in SECRETS.items():
            assert value not in text, f"the value of {name} leaked"


def test_writes_private_file_then_reports_no_change(tmp_path):
    path = tmp_path / "rp_environment"
    first, proc1 = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), diff=True)
    assert first["changed"] is True and not first.get("failed"), first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Values come back exactly, secrets included (they are in the file, only never in output).
    assert sourced(path, "COMFY_ARGS").decode() == COMFY_ARGS + "\n"
    assert sourced(path, "R2_SECRET_ACCESS_KEY", "bash").decode() == SECRETS["R2_SECRET_ACCESS_KEY"] + "\n"
    assert "COMFY_ARGS" in first["exported"] and "R2_BUCKET" in first["exported"]
    assert set(first["secret_names"]) == set(SECRETS)
    assert first["variables"]["HF_TOKEN"] == "********"
    assert first["variables"]["COMFY_ARGS"] == COMFY_ARGS
    assert "RUNPOD_POD_NAME" in first["missing"]
    # Set-but-empty is exported as empty, which differs from unset.
    assert "export RUNPOD_POD_ID=''" in path.read_text()
    assert_no_secret(proc1.stdout, proc1.stderr)

    content = path.read_bytes()
    second, proc2 = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), diff=True)
    assert second["changed"] is False and second["content_changed"] is False
    assert path.read_bytes() == content
    assert_no_secret(proc2.stdout, proc2.stderr)
    # -vvv of a run that changes the file (the diff is printed) shows no secret either.
    verbose = run_module_vvv({"path": str(path)}, env=pod_env(COMFY_ARGS="--changed"))
    assert "export COMFY_ARGS='--changed'" in verbose and "HF_TOKEN='********'" in verbose
    assert_no_secret(verbose)


def test_check_mode_writes_nothing_and_diff_is_masked(tmp_path):
    path = tmp_path / "rp_environment"
    result, proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), check=True, diff=True)
    assert result["changed"] is True
    assert not path.exists()
    after = result["diff"][0]["after"]
    assert "export HF_TOKEN='********'" in after and "export COMFY_ARGS=" in after
    assert_no_secret(proc.stdout, proc.stderr)


def test_value_change_and_secret_rotation_are_changes_shown_masked(tmp_path):
    path = tmp_path / "rp_environment"
    run_module("rp_env_export", {"path": str(path)}, env=pod_env())
    rotated = dict(SECRETS, HF_TOKEN="hf_rotated_token_abcdef")
    result, proc = run_module(
        "rp_env_export",
        {"path": str(path)},
        diff=True,
        env=dict(pod_env(), HF_TOKEN=rotated["HF_TOKEN"], COMFY_ARGS="--cpu"),
    )
    assert result["changed"] is True
    diff = result["diff"][0]
    assert "export HF_TOKEN='******** (changed)'" in diff["after"]
    assert "export COMFY_ARGS='--cpu'" in diff["after"]
    assert rotated["HF_TOKEN"] not in proc.stdout + proc.stderr
    assert sourced(path, "HF_TOKEN").decode() == rotated["HF_TOKEN"] + "\n"


def test_mode_drift_is_fixed_and_reported(tmp_path):
    path = tmp_path / "rp_environment"
    run_module("rp_env_export", {"path": str(path)}, env=pod_env())
    os.chmod(path, 0o644)
    checked, _proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), check=True)
    assert checked["changed"] is True and stat.S_IMODE(os.stat(path).st_mode) == 0o644
    fixed, _proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), diff=True)
    assert fixed["changed"] is True and fixed["content_changed"] is False
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_explicit_variables_win_and_are_masked_even_in_the_invocation(tmp_path):
    path = tmp_path / "rp_environment"
    args = {
        "path": str(path),
        "allow_list": ["COMFY_ARGS", "R2_BUCKET"],
        "variables": {
            "COMFY_ARGS": "--from-vars",
            "R2_BUCKET": None,
            "MY_API_KEY": "k3y-from-vars-77",
            "WEBHOOK": "https://hook.invalid/s3cret-path",
        },
        "secret_names": ["WEBHOOK"],
    }
    result, proc = run_module("rp_env_export", args, env=pod_env(), diff=True)
    assert result["changed"] is True, result
    assert result["exported"] == ["COMFY_ARGS", "MY_API_KEY", "WEBHOOK"]
    assert sourced(path, "COMFY_ARGS") == b"--from-vars\n"
    assert sourced(path, "WEBHOOK") == b"https://hook.invalid/s3cret-path\n"
    path.unlink()
    verbose = run_module_vvv(args, env=pod_env())
    assert "MY_API_KEY" in verbose
    for leaked in ("k3y-from-vars-77", "s3cret-path"):
        assert leaked not in proc.stdout + proc.stderr + verbose
    assert_no_secret(proc.stdout, proc.stderr, verbose)


def test_invalid_names_fail_clearly_and_touch_nothing(tmp_path):
    path = tmp_path / "rp_environment"
    args = {"path": str(path), "allow_list": ["COMFY_ARGS", "1BAD", "A-B"]}
    result, _proc = run_module("rp_env_export", args, env=pod_env())
    assert result["failed"] is True
    assert "'1BAD'" in result["msg"] and "'A-B'" in result["msg"] and "allow_list" in result["msg"]
    assert not path.exists()


def test_nul_and_non_string_values_fail_without_showing_the_value(tmp_path):
    path = tmp_path / "rp_environment"
    path.write_text("export KEEP='me'\n")
    result, proc = run_module("rp_env_export", {"path": str(path), "variables": {"HF_TOKEN": "abc\u0000defsecret"}})
    assert result["failed"] is True and "HF_TOKEN" in result["msg"] and "NUL" in result["msg"]
    assert "defsecret" not in proc.stdout + proc.stderr
    result, _proc = run_module("rp_env_export", {"path": str(path), "variables": {"FLAG": True}})
    assert result["failed"] is True and "variables.FLAG" in result["msg"]
    assert path.read_text() == "export KEEP='me'\n", "a failed run must leave the file alone"


def test_foreign_existing_content_is_hidden_from_the_diff(tmp_path):
    path = tmp_path / "rp_environment"
    path.write_text("HF_TOKEN=old-plain-secret-token\nsource /something\n")
    result, proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), diff=True)
    assert result["changed"] is True
    assert "not in rp_env_export format" in result["diff"][0]["before"]
    assert "old-plain-secret-token" not in proc.stdout + proc.stderr


def test_environ_file_is_read_instead_of_the_process_environment(tmp_path):
    """Over SSH the pod's settings live in /proc/1/environ, not in the module's environment."""
    environ = tmp_path / "environ"
    environ.write_bytes(b"COMFY_ARGS=--from-pid1\nsecond line\0HF_TOKEN=hf_pid1_secret_value\0NOT_ALLOWED=x\0")
    path = tmp_path / "rp_environment"
    result, proc = run_module(
        "rp_env_export",
        {"path": str(path), "environ_file": str(environ)},
        env=pod_env(COMFY_ARGS="--from-the-session"),
        diff=True,
    )
    assert result["exported"] == ["COMFY_ARGS", "HF_TOKEN"], result
    assert sourced(path, "COMFY_ARGS") == b"--from-pid1\nsecond line\n"
    assert "hf_pid1_secret_value" not in proc.stdout + proc.stderr
    missing, _proc = run_module("rp_env_export", {"path": str(path), "environ_file": str(tmp_path / "nope")})
    assert missing["failed"] is True and "Cannot read the environment from" in missing["msg"]
    assert sourced(path, "COMFY_ARGS") == b"--from-pid1\nsecond line\n", "a failed run leaves the file alone"


# -- bytes that are not UTF-8, and a file that is not a regular file --------------------------

POD_NAME = os.fsdecode(b"caf\xe9-pod")  # Latin-1 bytes: not UTF-8, as a pod's settings may be


def test_a_value_that_is_not_utf8_is_exported_byte_for_byte_and_shown_escaped(tmp_path):
    path = tmp_path / "rp_environment"
    env = pod_env(RUNPOD_POD_NAME=POD_NAME, HF_TOKEN=os.fsdecode(b"hf_\xff\xfeTOPsecretVAL"))
    first, proc = run_module("rp_env_export", {"path": str(path)}, env=env, diff=True)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True
    assert b"export RUNPOD_POD_NAME='caf\xe9-pod'\n" in path.read_bytes()
    assert sourced(path, "RUNPOD_POD_NAME") == b"caf\xe9-pod\n"
    assert sourced(path, "HF_TOKEN", "bash") == b"hf_\xff\xfeTOPsecretVAL\n"
    assert first["variables"]["RUNPOD_POD_NAME"] == "caf\\xe9-pod"
    assert first["variables"]["HF_TOKEN"] == "********"
    assert first["not_utf8"] == ["HF_TOKEN", "RUNPOD_POD_NAME"]
    assert "RUNPOD_POD_NAME='caf\\xe9-pod'" in first["diff"][0]["after"]
    assert "TOPsecretVAL" not in proc.stdout + proc.stderr
    again, _proc = run_module("rp_env_export", {"path": str(path)}, env=env)
    assert again["changed"] is False


def test_a_symlink_in_place_of_the_file_is_replaced_by_a_private_regular_file(tmp_path):
    """Someone swapped the file for a link to a world-readable copy: the secrets must not stay there."""
    path = tmp_path / "rp_environment"
    run_module("rp_env_export", {"path": str(path)}, env=pod_env())
    copy = tmp_path / "copy"
    copy.write_bytes(path.read_bytes())
    os.chmod(copy, 0o644)
    path.unlink()
    os.symlink(copy, path)
    checked, _proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), check=True)
    assert checked["changed"] is True and path.is_symlink()
    result, _proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), diff=True)
    assert result["changed"] is True and result["replaced_link"] == str(copy)
    assert not path.is_symlink() and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert sourced(path, "HF_TOKEN").decode() == SECRETS["HF_TOKEN"] + "\n"
    assert any(str(copy) in warning for warning in result.get("warnings", [])), result
    assert copy.read_bytes() and stat.S_IMODE(os.stat(copy).st_mode) == 0o644, "what it pointed to is left alone"
    again, _proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env())
    assert again["changed"] is False


def test_a_directory_or_pipe_in_place_of_the_file_is_refused(tmp_path):
    for make in (os.mkdir, os.mkfifo):
        path = tmp_path / f"rp_environment-{make.__name__}"
        make(path)
        result, _proc = run_module("rp_env_export", {"path": str(path)}, env=pod_env(), timeout=60)
        assert result["failed"] is True and "not a regular file" in result["msg"], result
        assert os.path.lexists(path)
