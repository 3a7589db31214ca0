"""The one atomic file writer and the sha256 helpers (module_utils._common.files), on real files.

What every file the collection writes relies on: the old bytes or the new ones at the path,
never a mix; the new bytes never readable under a wider mode than the final one; a replaced
file keeps its owner; ``replace=False`` never overwrites, not even what appears meanwhile; a
failure leaves the path as it was and no temporary file.
"""

import hashlib
import os
import stat
import sys

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import (  # noqa: E402
    is_sha256_hex,
    link_no_clobber,
    sha256_file,
    write_file_atomic,
)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def listing(folder):
    return sorted(os.listdir(folder))


def test_a_new_file_gets_its_mode_before_it_has_its_name(tmp_path):
    path = tmp_path / "secret.env"
    seen = []

    def prepare(tmp):
        # The moment before the rename: the name is not there yet, the bytes are private.
        seen.append((os.path.exists(path), mode(tmp), open(tmp, "rb").read()))

    assert write_file_atomic(str(path), b"TOKEN=x\n", mode=0o600, prepare=prepare) is True
    assert seen == [(False, 0o600, b"TOKEN=x\n")]
    assert path.read_bytes() == b"TOKEN=x\n" and mode(path) == 0o600
    assert listing(tmp_path) == ["secret.env"]


def test_an_old_umask_never_widens_it(tmp_path):
    old = os.umask(0)
    try:
        write_file_atomic(str(tmp_path / "f"), "x", mode=0o600)
    finally:
        os.umask(old)
    assert mode(tmp_path / "f") == 0o600


def test_mode_none_keeps_the_mode_of_the_file_it_replaces_and_new_file_mode_for_a_new_one(tmp_path):
    private = tmp_path / ".bashrc"
    private.write_text("old\n")
    os.chmod(private, 0o640)
    write_file_atomic(str(private), "new\n")
    assert private.read_text() == "new\n" and mode(private) == 0o640
    write_file_atomic(str(tmp_path / "fresh"), "new\n", new_file_mode=0o604)
    assert mode(tmp_path / "fresh") == 0o604


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_replaced_file_keeps_its_owner_unless_told_otherwise(tmp_path):
    kept, ours = tmp_path / "kept", tmp_path / "ours"
    for path in (kept, ours):
        path.write_text("old")
        os.chown(path, 4242, 4343)
    write_file_atomic(str(kept), "new")
    write_file_atomic(str(ours), "new", keep_owner=False)
    assert (os.stat(kept).st_uid, os.stat(kept).st_gid) == (4242, 4343)
    assert (os.stat(ours).st_uid, os.stat(ours).st_gid) == (os.geteuid(), os.getegid())


def test_a_link_is_replaced_by_a_file_and_what_it_showed_stays(tmp_path):
    shown = tmp_path / "elsewhere"
    shown.write_text("theirs")
    os.chmod(shown, 0o640)
    link = tmp_path / "link"
    os.symlink(shown, link)
    write_file_atomic(str(link), "ours")
    assert not link.is_symlink() and link.read_text() == "ours" and mode(link) == 0o640
    assert shown.read_text() == "theirs"


def test_replace_false_never_overwrites_even_what_appears_while_it_writes(tmp_path):
    path = tmp_path / "placeholder"
    path.write_text("the user's")
    assert write_file_atomic(str(path), "ours", replace=False) is False
    assert path.read_text() == "the user's"

    late = tmp_path / "late"

    def appear(tmp):
        late.write_text("arrived meanwhile")

    assert write_file_atomic(str(late), "ours", mode=0o644, replace=False, prepare=appear) is False
    assert late.read_text() == "arrived meanwhile"
    assert write_file_atomic(str(tmp_path / "free"), "ours", mode=0o755, replace=False) is True
    assert (tmp_path / "free").read_text() == "ours" and mode(tmp_path / "free") == 0o755
    assert listing(tmp_path) == ["free", "late", "placeholder"], "a temporary file was left"


def test_a_failure_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "plan.txt"
    path.write_text("old plan\n")

    def fail(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_file_atomic(str(path), "new plan\n", prepare=fail, tmp_prefix=".plan.")
    assert path.read_text() == "old plan\n"
    assert listing(tmp_path) == ["plan.txt"]


def test_a_full_disk_is_an_oserror_and_leaves_the_old_file(small_tmpfs):
    folder = small_tmpfs("64k")
    path = folder / "ledger.json"
    write_file_atomic(str(path), "{}\n")
    with open(folder / "filler", "wb") as handle:
        try:
            handle.write(b"x" * 1024 * 1024)
        except OSError:
            pass
    with pytest.raises(OSError):
        write_file_atomic(str(path), "x" * 200000)
    assert path.read_text() == "{}\n"
    assert listing(folder) == ["filler", "ledger.json"]


def test_text_is_written_as_utf8_and_undecodable_bytes_come_back_exactly(tmp_path):
    raw = "café \udcff".encode("utf-8", "surrogateescape")
    write_file_atomic(str(tmp_path / "f"), raw.decode("utf-8", "surrogateescape"))
    assert (tmp_path / "f").read_bytes() == raw


def test_link_no_clobber_refuses_a_taken_name(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    assert link_no_clobber(str(tmp_path / "a"), str(tmp_path / "b")) is False
    assert (tmp_path / "b").read_text() == "b"
    assert link_no_clobber(str(tmp_path / "a"), str(tmp_path / "c")) is True
    assert (tmp_path / "c").read_text() == "a"


def test_sha256_of_a_file_and_the_pattern(tmp_path):
    path = tmp_path / "model.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == digest == sha256_file(str(path), chunk=4096)
    assert is_sha256_hex(digest) and is_sha256_hex(digest.upper())
    for bad in (digest[:-1], digest + "0", digest + "\n", " " + digest, "g" * 64, None, 42):
        assert not is_sha256_hex(bad), repr(bad)
