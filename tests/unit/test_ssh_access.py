"""authorized_keys and host keys (module_utils.ssh_access), in-process on real files with the
real ssh-keygen."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils.ssh_access import (  # noqa: E402
    SSHAccess, SSHAccessError, key_lines,
)

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA a@laptop"
KEY_B = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB b@desk"


class Module:
    def __init__(self, check_mode=False, path=None):
        self.check_mode = check_mode
        self.path = path

    def get_bin_path(self, name, required=False):
        return shutil.which(name, path=self.path)

    @staticmethod
    def run_command(cmd):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_key_lines_trims_and_skips_comments_blanks_and_repeats():
    assert key_lines([f"  {KEY_A}  \n\n# old key\n{KEY_B}", KEY_A, ""]) == [KEY_A, KEY_B]


def test_keys_are_added_once_and_other_lines_kept(tmp_path):
    keys = tmp_path / "root/.ssh/authorized_keys"
    access = SSHAccess(Module(), str(keys), [KEY_A])
    added, fixed, before, after = access.authorize()
    assert added == [KEY_A] and fixed == [] and before == ""
    assert keys.read_text() == KEY_A + "\n"
    assert mode(keys) == 0o600 and mode(keys.parent) == 0o700
    assert SSHAccess(Module(), str(keys), [KEY_A]).authorize()[0] == []

    keys.write_text("# theirs\nssh-ed25519 AAAA other")  # no final newline
    added, dummy, dummy, dummy = SSHAccess(Module(), str(keys), [f"{KEY_A}\n{KEY_B}"]).authorize()
    assert added == [KEY_A, KEY_B]
    assert keys.read_text() == f"# theirs\nssh-ed25519 AAAA other\n{KEY_A}\n{KEY_B}\n"


def test_loose_modes_are_fixed_even_when_every_key_is_there(tmp_path):
    keys = tmp_path / ".ssh/authorized_keys"
    keys.parent.mkdir(mode=0o755)
    keys.write_text(KEY_A + "\n")
    os.chmod(keys, 0o644)
    os.chmod(keys.parent, 0o755)
    added, fixed, dummy, dummy = SSHAccess(Module(), str(keys), [KEY_A]).authorize()
    assert added == [] and sorted(fixed) == sorted([str(keys.parent), str(keys)])
    assert mode(keys) == 0o600 and mode(keys.parent) == 0o700


def test_check_mode_writes_nothing(tmp_path):
    keys = tmp_path / ".ssh/authorized_keys"
    access = SSHAccess(Module(check_mode=True), str(keys), [KEY_A], str(tmp_path / "etc/ssh"), ["ed25519"])
    assert access.authorize()[0] == [KEY_A]
    assert access.make_host_keys() == ["ed25519"]
    assert not (tmp_path / ".ssh").exists() and not (tmp_path / "etc").exists()


def test_no_keys_leaves_authorized_keys_alone(tmp_path):
    keys = tmp_path / ".ssh/authorized_keys"
    assert SSHAccess(Module(), str(keys), ["", "# nothing"]).authorize() == ([], [], "", "")
    assert not keys.parent.exists()


def test_missing_host_keys_are_made_and_existing_ones_never_replaced(tmp_path):
    host = tmp_path / "etc/ssh"
    access = SSHAccess(Module(), host_key_dir=str(host), host_key_types=["ed25519", "ecdsa"])
    assert access.make_host_keys() == ["ed25519", "ecdsa"]
    made = (host / "ssh_host_ed25519_key").read_bytes()
    assert (host / "ssh_host_ed25519_key.pub").is_file() and mode(host / "ssh_host_ed25519_key") == 0o600
    (host / "ssh_host_ecdsa_key").unlink()
    assert access.make_host_keys() == ["ecdsa"]
    assert (host / "ssh_host_ed25519_key").read_bytes() == made
    assert access.make_host_keys() == []


def test_without_ssh_keygen_the_error_says_what_to_do(tmp_path):
    access = SSHAccess(Module(path=str(tmp_path)), host_key_dir=str(tmp_path / "ssh"), host_key_types=["rsa"])
    with pytest.raises(SSHAccessError, match="ssh-keygen is not installed.*openssh-client"):
        access.make_host_keys()


def test_a_bad_key_type_names_the_key(tmp_path):
    access = SSHAccess(Module(), host_key_dir=str(tmp_path / "ssh"), host_key_types=["nosuchtype"])
    with pytest.raises(SSHAccessError, match="nosuchtype host key"):
        access.make_host_keys()
