"""Which parts of a git URL are credentials to mask (module_utils.git_checkout)."""
import sys

import pytest

from harness.paths import REPO

# The checkout is the collection: make `ansible_collections.aiclipse.comfyui` importable.
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.aiclipse.comfyui.plugins.module_utils.git_checkout import (  # noqa: E402
    mask_url_credentials, redact, url_secrets,
)


@pytest.mark.parametrize("url, secrets", [
    ("https://user:ghp_token123@github.com/o/r.git", {"ghp_token123"}),
    ("https://ghp_0123456789abcdefghijklmn@github.com/o/r.git", {"ghp_0123456789abcdefghijklmn"}),
    # A user name is no secret, and masking "git" would garble every message that says git.
    ("ssh://git@github.com/o/r.git", set()),
    ("https://user:x@host/r.git", set()),
    ("https://github.com/o/r.git", set()),
    ("/srv/repos/ComfyUI", set()),
    ("", set()),
    ("https://user:ghp_inline99@host/r.git|main|x|a manifest line", {"ghp_inline99"}),
])
def test_url_secrets(url, secrets):
    assert url_secrets(url) == secrets
    for secret in secrets:
        assert secret not in redact(url)


def test_mask_url_credentials_adds_them_to_ansibles_no_log_values():
    class Module:
        no_log_values = set()

    module = Module()
    mask_url_credentials(module, ["https://u:pass-word@h/r.git", "https://h/r.git"])
    assert module.no_log_values == {"pass-word"}
