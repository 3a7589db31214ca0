"""authorized_keys and host keys (module_utils._environment.ssh_access), in-process on real files with the
real ssh-keygen."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._environment.ssh_access import (  # noqa: E402
    SSHAccess,
    SSHAccessError,
    key_lines,
)

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA a@laptop"
KEY_B = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB b@desk"


class Module:
    def __init__(self, check_mode=False, path=None):
        self.check_mode = check_mode
        self.path = path
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

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


def test_a_link_in_place_of_authorized_keys_becomes_a_private_regular_file(tmp_path):
    shared = tmp_path / "persist" / "keys"
    shared.parent.mkdir()
    shared.write_text(KEY_B + "\n")
    os.chmod(shared, 0o644)
    keys = tmp_path / ".ssh" / "authorized_keys"
    keys.parent.mkdir(mode=0o700)
    os.symlink(shared, keys)
    module = Module()
    access = SSHAccess(module, str(keys), [KEY_B])
    added, dummy, before, after = access.authorize()
    assert added == [] and access.replaced_link == str(shared)
    assert not keys.is_symlink() and keys.read_text() == KEY_B + "\n" and mode(keys) == 0o600
    assert shared.read_text() == KEY_B + "\n" and mode(shared) == 0o644, "what it pointed to stays"
    assert str(shared) in module.warnings[0]
    again = SSHAccess(Module(), str(keys), [KEY_B])
    assert again.authorize()[:2] == ([], []) and again.replaced_link is None


def test_a_folder_in_place_of_authorized_keys_is_refused(tmp_path):
    keys = tmp_path / ".ssh" / "authorized_keys"
    keys.mkdir(parents=True)
    with pytest.raises(SSHAccessError, match="not a regular file"):
        SSHAccess(Module(), str(keys), [KEY_A]).authorize()


@pytest.mark.parametrize(
    "damage, problem, kept",
    [
        (lambda path: path.write_bytes(b""), "empty", False),
        (lambda path: path.write_bytes(path.read_bytes()[:60]), "cannot load", True),
        (lambda path: (path.unlink(), os.symlink("/nonexistent/key", path)), "a link to nothing", True),
        (lambda path: (path.unlink(), path.mkdir()), "not a regular file", True),
    ],
)
def test_an_unusable_host_key_is_made_anew(tmp_path, damage, problem, kept):
    host = tmp_path / "etc/ssh"
    SSHAccess(Module(), host_key_dir=str(host), host_key_types=["ed25519", "ecdsa"]).make_host_keys()
    good = (host / "ssh_host_ecdsa_key").read_bytes()
    key = host / "ssh_host_ed25519_key"
    old_pub = (host / "ssh_host_ed25519_key.pub").read_bytes()
    damage(key)
    checked = SSHAccess(Module(check_mode=True), host_key_dir=str(host), host_key_types=["ed25519", "ecdsa"])
    assert checked.make_host_keys() == ["ed25519"]
    module = Module()
    access = SSHAccess(module, host_key_dir=str(host), host_key_types=["ed25519", "ecdsa"])
    assert access.make_host_keys() == ["ed25519"]
    (record,) = access.invalid_host_keys
    assert record["type"] == "ed25519" and problem in record["problem"]
    assert (record["moved_to"] is not None) == kept
    if kept:
        assert os.path.lexists(record["moved_to"]) and Path(record["moved_to"] + ".pub").read_bytes() == old_pub
    assert str(key) in module.warnings[0] and problem in module.warnings[0]
    check = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(key)], capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    assert (host / "ssh_host_ecdsa_key").read_bytes() == good, "the good key is never replaced"
    assert SSHAccess(Module(), host_key_dir=str(host), host_key_types=["ed25519", "ecdsa"]).make_host_keys() == []


def test_a_corrupt_key_with_a_good_pub_beside_it_is_caught(tmp_path):
    """ssh-keygen -l would read the .pub and call the key fine."""
    host = tmp_path / "ssh"
    SSHAccess(Module(), host_key_dir=str(host), host_key_types=["ed25519"]).make_host_keys()
    key = host / "ssh_host_ed25519_key"
    key.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n")
    assert subprocess.run(["ssh-keygen", "-l", "-f", str(key)], capture_output=True, check=False).returncode == 0
    access = SSHAccess(Module(), host_key_dir=str(host), host_key_types=["ed25519"])
    assert access.make_host_keys() == ["ed25519"] and access.invalid_host_keys


def test_a_host_key_readable_by_others_is_made_private_and_kept(tmp_path):
    host = tmp_path / "ssh"
    SSHAccess(Module(), host_key_dir=str(host), host_key_types=["ed25519"]).make_host_keys()
    key = host / "ssh_host_ed25519_key"
    content = key.read_bytes()
    os.chmod(key, 0o644)
    access = SSHAccess(Module(), host_key_dir=str(host), host_key_types=["ed25519"])
    assert access.make_host_keys() == [] and access.host_key_modes_fixed == [str(key)]
    assert key.read_bytes() == content and mode(key) == 0o600
