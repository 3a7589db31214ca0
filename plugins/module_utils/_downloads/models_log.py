# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The models log: what every downloader tells a person (``tail -f logs/models.log``).

One line per event, ``2026-05-01 12:00:00 <downloader>: <message>``; continuation lines of a
message are indented. Both downloaders may append at the same time (each line is one
``write`` on an ``O_APPEND`` descriptor). It holds model names, sizes, hosts and reasons, never
a token, a secret header or a URL query.

Writing never raises: a log that cannot be written (disk full, read-only) must not turn
finished downloads into a crash. The first problem is kept in ``errors`` for the module to
report as a warning.
"""

from __future__ import annotations

import os
import threading
import time


class ModelsLog:
    """``log = ModelsLog(path, "aria2_batch"); log("downloaded x")``; a None path logs nothing."""

    def __init__(self, path, downloader):
        self.path = path
        self.downloader = downloader
        self.errors = []
        self._lock = threading.Lock()

    def __call__(self, message):
        if not self.path:
            return
        text = str(message).replace("\n", "\n    ")
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.downloader}: {text}\n"
        with self._lock:
            try:
                directory = os.path.dirname(self.path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, line.encode("utf-8", "replace"))
                finally:
                    os.close(fd)
            except OSError as exc:
                if not self.errors:
                    self.errors.append(f"cannot write {self.path}: {exc.strerror or exc}")
