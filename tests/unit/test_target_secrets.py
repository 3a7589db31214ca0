"""target_secrets: secrets by name from the environment or the pod's 0600 env file."""

import os
import subprocess
import sys

import pytest

from harness.paths import REPO

sys.path.insert(0, str(REPO / "collections"))
from ansible_collections.aiclipse.comfyui.plugins.module_utils._downloads.target_secrets import (  # noqa: E402
    SecretsError,
    TargetSecrets,
    parse_env_file,
)

NASTY = 'it\'s a $ecret `x` \\ "q"\nline two\u00e9'


def quoted(value):
    return "'" + value.replace("'", "'\\''") + "'"


def env_file(tmp_path, values, mode=0o600, name="rp_environment"):
    path = tmp_path / name
    path.write_text("# Pod settings\n" + "".join(f"export {k}={quoted(v)}\n" for k, v in values.items()))
    path.chmod(mode)
    return path


def test_values_come_back_byte_for_byte_as_bash_reads_them(tmp_path):
    path = env_file(tmp_path, {"HF_TOKEN": NASTY, "EMPTY": "", "R2_SECRET_ACCESS_KEY": "abc/def+g=="})
    parsed = parse_env_file(path.read_text())
    shell = subprocess.run(
        ["bash", "-c", '. "$0"; printf %s "$HF_TOKEN"', str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert parsed["HF_TOKEN"] == NASTY == shell
    assert parsed["EMPTY"] == "" and parsed["R2_SECRET_ACCESS_KEY"] == "abc/def+g=="


def test_plain_words_comments_and_unparsable_lines(tmp_path):
    text = "# x\nexport A=plain-word_1\nB='quoted'\nthis is not an assignment\nexport C='unterminated\n"
    assert parse_env_file(text) == {"A": "plain-word_1", "B": "quoted"}


def test_the_environment_wins_and_the_file_fills_in(tmp_path):
    path = env_file(tmp_path, {"HF_TOKEN": "from-file", "CIVITAI_TOKEN": "civit"})
    secrets = TargetSecrets(str(path), environ={"HF_TOKEN": "from-env", "CIVITAI_TOKEN": ""})
    assert secrets.get("HF_TOKEN") == "from-env"
    assert secrets.get("CIVITAI_TOKEN") == "civit", "an empty variable counts as unset"
    assert secrets.get("R2_BUCKET") is None
    assert TargetSecrets(str(tmp_path / "absent"), environ={}).get("HF_TOKEN") is None
    assert TargetSecrets(None, environ={}).get("HF_TOKEN") is None


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused(tmp_path, mode):
    path = env_file(tmp_path, {"HF_TOKEN": "x"}, mode=mode)
    with pytest.raises(SecretsError, match=rf"its mode is {mode:04o}.*must be 0600 \(chmod 600 "):
        TargetSecrets(str(path), environ={}).get("HF_TOKEN")


def test_a_link_a_fifo_and_a_foreign_owner_are_refused(tmp_path):
    real = env_file(tmp_path, {"HF_TOKEN": "x"})
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(SecretsError, match="symbolic link"):
        TargetSecrets(str(link), environ={}).get("HF_TOKEN")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(SecretsError, match="not a regular file"):
        TargetSecrets(str(fifo), environ={}).get("HF_TOKEN")
    os.chown(real, 65534, 65534)
    with pytest.raises(SecretsError, match="owned by uid 65534, not by the user running the download"):
        TargetSecrets(str(real), environ={}).get("HF_TOKEN")


def test_the_file_is_only_read_when_a_name_is_missing_from_the_environment(tmp_path):
    path = env_file(tmp_path, {"HF_TOKEN": "x"}, mode=0o644)
    assert TargetSecrets(str(path), environ={"HF_TOKEN": "env"}).get("HF_TOKEN") == "env"
    with pytest.raises(SecretsError, match="not a variable name"):
        TargetSecrets(str(path), environ={}).get("HF TOKEN")
