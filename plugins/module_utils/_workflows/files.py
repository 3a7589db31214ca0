# Copyright: (c) 2026, aiclipse team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find workflow files under the given paths and read them, within limits, without following
anything out of those paths.

* A folder is searched recursively for ``*.json``; hidden names (``.git``, ``.index.json``)
  are skipped, as are links to folders.
* A link to a file is followed only when its target lies inside one of the given folders (so a
  workflow folder cannot make the pod read ``/etc/shadow`` or a FIFO elsewhere); a file reached
  twice is read once.
* Only regular files are opened (``O_NONBLOCK``: a FIFO named ``x.json`` cannot hang a start),
  at most ``max_bytes`` of them, as UTF-8 JSON.

Every file that is not read gets a reason; nothing raises for a bad file.
"""

from __future__ import annotations

import json
import os
import stat

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_FILES = 10000


def _inside(path, roots):
    for root in roots:
        try:
            if os.path.commonpath((root, path)) == root:
                return True
        except ValueError:
            continue
    return False


def find_workflow_files(paths, max_files=DEFAULT_MAX_FILES):
    """(files, skipped): ``files`` is [(path as found, real path to read)], sorted within each
    given path and without repeats; ``skipped`` is [(path, reason)]."""
    roots = [os.path.realpath(given) for given in paths if os.path.isabs(given) and os.path.isdir(given)]
    found, skipped, seen = [], [], set()

    def add(shown_path, real):
        if real in seen:
            return
        if len(found) >= max_files:
            skipped.append((shown_path, f"not read: more than {max_files} workflow files"))
            return
        seen.add(real)
        found.append((shown_path, real))

    for given in paths:
        if not os.path.isabs(given):
            skipped.append((given, "not read: not an absolute path"))
            continue
        real = os.path.realpath(given)
        if os.path.isdir(real):
            _walk(given, real, roots, add, skipped)
        elif os.path.isfile(real):
            add(given, real)  # named explicitly: read wherever the name leads
        elif os.path.lexists(given):
            skipped.append((given, "not read: not a regular file or folder"))
        else:
            skipped.append((given, "not read: does not exist"))
    return found, skipped


def _walk(given, real_root, roots, add, skipped):
    for top, dirs, files in os.walk(real_root):
        rel_top = os.path.relpath(top, real_root)
        shown_top = given if rel_top == "." else os.path.join(given, rel_top)
        keep = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            if os.path.islink(os.path.join(top, name)):
                skipped.append((os.path.join(shown_top, name), "not read: a link to a folder is not followed"))
                continue
            keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(".json"):
                continue
            path = os.path.join(top, name)
            shown_path = os.path.join(shown_top, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError as exc:
                skipped.append((shown_path, f"not read: {exc.strerror}"))
                continue
            if stat.S_ISLNK(mode):
                target = os.path.realpath(path)
                if not _inside(target, roots):
                    skipped.append((shown_path, f"not read: a link to {target}, outside the workflow folders"))
                    continue
                if not os.path.isfile(target):
                    skipped.append((shown_path, "not read: a link to something that is not a regular file"))
                    continue
                add(shown_path, target)
            elif stat.S_ISREG(mode):
                add(shown_path, path)
            else:
                skipped.append((shown_path, "not read: not a regular file"))


def read_json(real_path, max_bytes=DEFAULT_MAX_BYTES):
    """(document, None) or (None, reason)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real_path, flags)
    except OSError as exc:
        return None, f"cannot open: {exc.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        if info.st_size > max_bytes:
            return None, f"{info.st_size} bytes, more than the {max_bytes} a workflow may have"
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1024 * 1024, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                return None, f"more than the {max_bytes} bytes a workflow may have"
        raw = b"".join(chunks)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror}"
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    except RecursionError:
        return None, "invalid JSON: nested too deeply to read"
    except ValueError as exc:  # e.g. an integer with too many digits
        return None, f"invalid JSON: {str(exc).splitlines()[0][:200]}"
