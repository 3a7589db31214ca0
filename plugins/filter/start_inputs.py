# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs digest of a pod start, for the start_stamp module (documented in
start_inputs_digest.yml).

It runs on the controller, so variable values (tokens among them) never reach the target:
the module only sees the digest.
"""

import hashlib
import json
import os

from ansible.release import __version__ as ANSIBLE_VERSION

from ansible_collections.aiclipse.comfyui.plugins.module_utils._common.files import sha256_file

# The collection's code: a role or module edited without a version bump still means a full run.
CODE_DIRS = ("plugins", "roles", "playbooks", "meta")
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_code_digest(root=COLLECTION_ROOT):
    """sha256 over the path and bytes of every file of the collection's code directories."""
    digest = hashlib.sha256()
    for top in CODE_DIRS:
        for directory, subdirs, files in os.walk(os.path.join(root, top)):
            subdirs[:] = sorted(name for name in subdirs if name != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = os.path.join(directory, name)
                digest.update(os.path.relpath(path, root).encode("utf-8", "surrogateescape") + b"\0")
                digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def start_inputs_digest(value):
    """sha256 of value (canonical JSON), the collection's code and the ansible-core version."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256()
    for part in (text, collection_code_digest(), ANSIBLE_VERSION):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


class FilterModule:
    """Pod start -> inputs digest."""

    def filters(self):
        return {"start_inputs_digest": start_inputs_digest}
