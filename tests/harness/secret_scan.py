"""Find a secret wherever it may rest: files (ansible's AnsiballZ payloads unpacked too) and argv.

AnsiballZ files carry the module's code as a base64 zip; the task's arguments sit beside it
in clear text in ansible-core 2.19, but older and newer layouts may put them inside the zip,
so both are searched.
"""

import base64
import io
import os
import re
import zipfile
from pathlib import Path

_ZIPDATA = re.compile(rb"""(?:zip_data|ZIPDATA)\s*=\s*(?:b?)['"]{1,3}([A-Za-z0-9+/=\s]+)['"]{1,3}""")


def _contents(data):
    """The raw bytes and, for an AnsiballZ file, every member of its embedded zip."""
    yield data
    for match in _ZIPDATA.finditer(data):
        try:
            archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(1))))
            for name in archive.namelist():
                yield archive.read(name)
        except (ValueError, zipfile.BadZipFile):
            continue


def files_holding(secrets, roots):
    """[(path, secret)] for every regular file under `roots` that holds one of `secrets`."""
    found = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
            except OSError:
                continue  # deleted while we looked: a temp file of a running job
            for content in _contents(data):
                for secret in secrets:
                    if secret.encode() in content:
                        found.append((str(path), secret))
    return found


def argv_holding(secrets):
    """[(pid, argv)] of every process whose command line holds one of `secrets`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if any(secret.encode() in cmdline for secret in secrets):
            found.append((int(pid), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found
