"""COMFY_ARGS -> ComfyUI argv (module_utils._comfyui.launch_args) and the launch_config module.

The splitting is checked against bash itself: for words without expansions, what bash passes
to a command is the oracle for what a user expects COMFY_ARGS to mean.
"""

import json
import os
import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._comfyui.launch_args import (  # noqa: E402
    LaunchArgsError,
    build_argv,
    split_comfy_args,
)
from harness.ansible_run import run_module  # noqa: E402

PY = "/venv/bin/python"
BASE = [PY, "main.py", "--listen", "0.0.0.0", "--port", "8188"]


def bash_words(text):
    """The words bash passes to a command for `text` (globbing off, no expansions in `text`)."""
    out = subprocess.run(["bash", "-fc", "printf '%s\\0' " + text], capture_output=True, check=True)
    words = out.stdout.split(b"\0")[:-1]
    # printf with no words still prints one empty word; no words means an empty list.
    return [] if not text.strip() else [w.decode() for w in words]


@pytest.mark.parametrize(
    "comfy_args, expected",
    [
        ("--lowvram", ["--lowvram"]),
        ("  --lowvram   --preview-method auto  ", ["--lowvram", "--preview-method", "auto"]),
        ('--output-directory "/workspace/my outputs"', ["--output-directory", "/workspace/my outputs"]),
        ("--extra 'it''s' --x", ["--extra", "its", "--x"]),
        ("--title 'say \"hi\"'", ["--title", 'say "hi"']),
        ("--path a\\ b", ["--path", "a b"]),
        ('--empty ""', ["--empty", ""]),
        ("--unicode 'caf\u00e9 \u2603'", ["--unicode", "caf\u00e9 \u2603"]),
    ],
)
def test_split_respects_quotes_like_bash(comfy_args, expected):
    assert split_comfy_args(comfy_args) == expected
    assert bash_words(comfy_args) == expected


@pytest.mark.parametrize(
    "comfy_args, expected",
    [
        ("--dir $HOME", ["--dir", "$HOME"]),
        ("--x $(touch /tmp/aiclipse-injected)", ["--x", "$(touch", "/tmp/aiclipse-injected)"]),
        ("--x `id`; rm -rf /", ["--x", "`id`;", "rm", "-rf", "/"]),
        ("--models /workspace/models/*", ["--models", "/workspace/models/*"]),
        ("--a # not a comment", ["--a", "#", "not", "a", "comment"]),
    ],
)
def test_nothing_is_expanded_globbed_or_run(comfy_args, expected):
    assert split_comfy_args(comfy_args) == expected
    assert not os.path.exists("/tmp/aiclipse-injected")


@pytest.mark.parametrize("comfy_args", ['--title "unclosed', "--title 'unclosed", "--path trailing\\"])
def test_unbalanced_quotes_are_a_clear_error(comfy_args):
    with pytest.raises(LaunchArgsError) as err:
        split_comfy_args(comfy_args)
    message = str(err.value)
    assert "COMFY_ARGS" in message and repr(comfy_args) in message
    assert "quote" in message


def test_sage_attention_only_when_comfy_args_is_empty():
    assert build_argv(PY, "", True) == BASE + ["--use-sage-attention"]
    assert build_argv(PY, "   ", True) == BASE + ["--use-sage-attention"]
    assert build_argv(PY, None, True) == BASE + ["--use-sage-attention"]
    assert build_argv(PY, "", False) == BASE
    assert build_argv(PY, "--lowvram", True) == BASE + ["--lowvram"]


def test_python_must_be_absolute():
    with pytest.raises(LaunchArgsError, match="absolute"):
        build_argv("python", "")


# Characters whose meaning is the same for bash and shlex (no $, `, newline: those are expansions
# bash would perform and we deliberately do not).
WORD_ALPHABET = st.sampled_from(list("ab-=/. _'\"\\") + ["\u00e9"])


@settings(max_examples=150, deadline=None)
@given(st.text(WORD_ALPHABET, max_size=24))
def test_any_balanced_value_splits_exactly_like_bash(text):
    try:
        ours = split_comfy_args(text)
    except LaunchArgsError:
        # bash must refuse it too (unterminated quote or trailing escape).
        proc = subprocess.run(["bash", "-fc", "printf '%s\\0' " + text], capture_output=True, check=False)
        assert proc.returncode != 0 or text.endswith("\\")
        return
    assert ours == bash_words(text)


# ---- the module, run through ansible ------------------------------------------------------


def launch_args(tmp_path, **overrides):
    args = {
        "path": str(tmp_path / "state" / "launch.json"),
        "comfyui_dir": "/workspace/aiclipse/ComfyUI",
        "python": PY,
        "comfy_args": '--lowvram --output-directory "/w/my out"',
    }
    args.update(overrides)
    return args


def test_module_writes_launch_file_once_and_is_idempotent(tmp_path):
    args = launch_args(tmp_path)
    result = run_module("launch_config", args)[0]
    assert result["changed"] is True, result
    path = tmp_path / "state" / "launch.json"
    doc = json.loads(path.read_text())
    assert doc["argv"] == BASE + ["--lowvram", "--output-directory", "/w/my out"]
    assert doc["cwd"] == "/workspace/aiclipse/ComfyUI"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    mtime = path.stat().st_mtime_ns

    again = run_module("launch_config", args)[0]
    assert again["changed"] is False, again
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["launch.json"]


def test_module_check_mode_and_diff_tell_the_truth(tmp_path):
    args = launch_args(tmp_path)
    run_module("launch_config", args)
    path = tmp_path / "state" / "launch.json"
    before = path.read_bytes()

    changed = run_module(
        "launch_config", {**args, "comfy_args": "", "enable_sage_attention": "true"}, check=True, diff=True
    )[0]
    assert changed["changed"] is True
    assert path.read_bytes() == before
    assert "--use-sage-attention" in changed["diff"]["after"]
    assert "--lowvram" in changed["diff"]["before"]

    same = run_module("launch_config", args, check=True, diff=True)[0]
    assert same["changed"] is False


def test_module_fixes_mode_drift(tmp_path):
    args = launch_args(tmp_path)
    run_module("launch_config", args)
    path = tmp_path / "state" / "launch.json"
    path.chmod(0o644)
    result = run_module("launch_config", args)[0]
    assert result["changed"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_module_bad_quotes_fail_and_keep_the_last_good_file(tmp_path):
    args = launch_args(tmp_path)
    run_module("launch_config", args)
    path = tmp_path / "state" / "launch.json"
    before = path.read_bytes()
    result = run_module("launch_config", {**args, "comfy_args": '--title "oops'})[0]
    assert result.get("failed") is True
    assert "COMFY_ARGS cannot be split" in result["msg"] and "Close every quote" in result["msg"]
    assert path.read_bytes() == before
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["launch.json"]


def test_module_rejects_a_non_boolean_sage_setting(tmp_path):
    result = run_module("launch_config", launch_args(tmp_path, comfy_args="", enable_sage_attention="maybe"))[0]
    assert result.get("failed") is True
    assert "enable_sage_attention" in result["msg"]
    assert not (tmp_path / "state" / "launch.json").exists()


def test_base_directory_comes_before_comfy_args_so_the_users_own_wins():
    assert build_argv(PY, "--lowvram", base_directory="/workspace/aiclipse") == BASE + [
        "--base-directory",
        "/workspace/aiclipse",
        "--lowvram",
    ]
    # argparse keeps the last value: a --base-directory in COMFY_ARGS is the one ComfyUI uses.
    argv = build_argv(PY, "--base-directory /elsewhere", base_directory="/workspace/aiclipse")
    assert argv[-2:] == ["--base-directory", "/elsewhere"]
    assert build_argv(PY, "", True, base_directory="/v") == BASE + ["--base-directory", "/v", "--use-sage-attention"]
    with pytest.raises(LaunchArgsError, match="base directory must be an absolute path"):
        build_argv(PY, "", base_directory="relative/vault")


def test_module_writes_the_base_directory_and_the_variables_for_comfyui_manager(tmp_path):
    args = launch_args(tmp_path, base_directory="/workspace/aiclipse")
    result = run_module("launch_config", args)[0]
    doc = json.loads((tmp_path / "state" / "launch.json").read_text())
    assert doc["argv"] == BASE + [
        "--base-directory",
        "/workspace/aiclipse",
        "--lowvram",
        "--output-directory",
        "/w/my out",
    ]
    assert doc["env"] == {
        "COMFYUI_PATH": "/workspace/aiclipse/ComfyUI",
        "COMFYUI_FOLDERS_BASE_PATH": "/workspace/aiclipse",
    }
    assert result["env"] == doc["env"]
    assert run_module("launch_config", args)[0]["changed"] is False
