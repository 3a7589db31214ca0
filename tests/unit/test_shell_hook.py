"""module_utils._environment.shell_hook and the shell_hook module: one hook line, first, that really works.

The placement tests run real bash on the resulting bashrc in non-interactive mode, where a
Debian/Ubuntu bashrc returns early, so they fail if the hook is not above that return.
"""

import os
import stat
import subprocess
import sys

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._environment.shell_hook import (  # noqa: E402
    HOOK_MARKER,
    hook_line,
    hooked_content,
)
from harness.ansible_run import run_module  # noqa: E402

UBUNTU_GUARD = "case $- in\n    *i*) ;;\n      *) return;;\nesac\n"
DEBIAN_GUARD = '[ -z "$PS1" ] && return\n'
LEGACY = ("/etc/rp_environment",)


def non_interactive_value(bashrc, env_file, name="POD_SETTING"):
    """What a non-interactive bash that reads `bashrc` (as sshd's bash does) sees for `name`."""
    env_file.write_text(f"export {name}='from the pod'\n")
    out = subprocess.run(
        ["env", "-i", "bash", "-c", f'. "$1"; printf "<%s>" "${name}"', "bash", str(bashrc)],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout


def test_hook_goes_before_the_early_return_and_works(tmp_path):
    env_file = tmp_path / "rp env"  # a space: the line must quote the path
    for guard in (UBUNTU_GUARD, DEBIAN_GUARD):
        bashrc = tmp_path / "bashrc"
        bashrc.write_text(guard + "alias ll='ls -l'\n")
        assert non_interactive_value(bashrc, env_file) == "<>", "control: the guard stops a hook below it"
        bashrc.write_text(hooked_content(bashrc.read_text(), hook_line(str(env_file)), LEGACY))
        lines = bashrc.read_text().splitlines()
        assert HOOK_MARKER in lines[0] and lines[1:] == (guard + "alias ll='ls -l'").splitlines()
        assert non_interactive_value(bashrc, env_file) == "<from the pod>"


def test_moved_copied_hooks_and_legacy_lines_leave_exactly_one_first_line():
    line = hook_line("/etc/rp_environment")
    messy = (
        f"{UBUNTU_GUARD}source /etc/rp_environment\n{line}\n  . /etc/rp_environment  \n"
        f"echo keep\n{line}\nsource /etc/rp_environment.bak\n"
    )
    result = hooked_content(messy, line, LEGACY)
    assert result.splitlines() == [line] + UBUNTU_GUARD.splitlines() + ["echo keep", "source /etc/rp_environment.bak"]


def test_idempotent_and_a_missing_file_gets_only_the_hook():
    line = hook_line("/etc/rp_environment")
    once = hooked_content("echo a\nno newline at end", line, LEGACY)
    assert hooked_content(once, line, LEGACY) == once
    assert once == f"{line}\necho a\nno newline at end"
    assert hooked_content(None, line, LEGACY) == line + "\n"


def test_legacy_lines_of_a_custom_env_file_are_removed_too():
    line = hook_line("/srv/env")
    assert hooked_content(". /srv/env\nsource /etc/rp_environment\n", line, LEGACY + ("/srv/env",)) == line + "\n"


def test_hook_line_keeps_its_original_form():
    """Pods provisioned before this module have this exact line: it must not be rewritten."""
    assert hook_line("/etc/rp_environment") == (
        "if [ -r /etc/rp_environment ]; then . /etc/rp_environment; fi  # aiclipse.comfyui pod_env hook"
    )


def test_module_check_mode_writes_nothing_then_real_run_then_no_change(tmp_path):
    private = tmp_path / "home" / ".bashrc"
    private.parent.mkdir()
    private.write_text(DEBIAN_GUARD + "source /etc/rp_environment\n")
    private.chmod(0o600)
    fresh = tmp_path / "new" / "dir" / ".bashrc"
    profile = tmp_path / "profile.d" / "rp_environment.sh"
    args = {"files": [str(private), str(fresh)], "env_file": "/etc/rp_environment", "profile_script": str(profile)}

    result, _proc = run_module("shell_hook", args, check=True, diff=True)
    assert result["changed"] is True and not result.get("failed"), result
    assert result["changed_files"] == [str(private), str(fresh), str(profile)]
    assert private.read_text() == DEBIAN_GUARD + "source /etc/rp_environment\n"
    assert not fresh.parent.exists() and not profile.parent.exists()
    assert [d["after_header"] for d in result["diff"]] == [str(private), str(fresh), str(profile)]

    result, _proc = run_module("shell_hook", args, diff=True)
    assert result["changed"] is True and not result.get("failed"), result
    line = result["line"]
    assert private.read_text() == f"{line}\n{DEBIAN_GUARD}"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600, "a private bashrc stays private"
    assert fresh.read_text() == profile.read_text() == line + "\n"
    assert stat.S_IMODE(os.stat(profile).st_mode) == 0o644
    assert sorted(result["created_dirs"]) == sorted([str(fresh.parent), str(profile.parent)])
    assert not list(tmp_path.rglob(".shell_hook.*")), "no temporary file left behind"

    result, _proc = run_module("shell_hook", args, diff=True)
    assert result["changed"] is False and result["changed_files"] == [] and "diff" not in result, result


def test_links_in_place_of_managed_files_become_regular_files(tmp_path):
    """The profile script is all ours: a link there is replaced, whatever it showed. A bashrc that
    is a link keeps what it showed, in a regular file with the hook; the linked files stay as they were."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "bashrc").write_text("alias ll='ls -l'\n")
    (dotfiles / "profile.sh").write_text("echo not ours\n")
    os.chmod(dotfiles / "profile.sh", 0o600)
    bashrc = tmp_path / ".bashrc"
    profile = tmp_path / "profile.d" / "rp_environment.sh"
    profile.parent.mkdir()
    os.symlink(dotfiles / "bashrc", bashrc)
    os.symlink(dotfiles / "profile.sh", profile)
    args = {"files": [str(bashrc)], "env_file": "/etc/rp_environment", "profile_script": str(profile)}

    result, _proc = run_module("shell_hook", args, diff=True)
    assert result["changed"] is True and not result.get("failed"), result
    assert result["replaced_links"] == sorted([str(bashrc), str(profile)])
    assert len(result.get("warnings", [])) == 2, result
    line = result["line"]
    assert not bashrc.is_symlink() and bashrc.read_text() == f"{line}\nalias ll='ls -l'\n"
    assert not profile.is_symlink() and profile.read_text() == line + "\n"
    assert stat.S_IMODE(os.lstat(profile).st_mode) == 0o644
    assert (dotfiles / "bashrc").read_text() == "alias ll='ls -l'\n"
    assert (dotfiles / "profile.sh").read_text() == "echo not ours\n"
    again, _proc = run_module("shell_hook", args)
    assert again["changed"] is False, again


def test_a_bashrc_with_bytes_that_are_not_utf8_keeps_them(tmp_path):
    bashrc = tmp_path / ".bashrc"
    bashrc.write_bytes(b"export GREETING='caf\xe9'\n")
    result, _proc = run_module("shell_hook", {"files": [str(bashrc)]}, diff=True)
    assert result["changed"] is True and not result.get("failed"), result
    assert bashrc.read_bytes() == result["line"].encode() + b"\nexport GREETING='caf\xe9'\n"
    assert "caf\\xe9" in result["diff"][0]["after"]


def test_a_folder_or_pipe_in_place_of_a_hook_file_is_refused(tmp_path):
    for make in (os.mkdir, os.mkfifo):
        path = tmp_path / f"bashrc-{make.__name__}"
        make(path)
        result, _proc = run_module("shell_hook", {"files": [str(path)]}, timeout=60)
        assert result.get("failed") is True and "not a regular file" in result["msg"], result
