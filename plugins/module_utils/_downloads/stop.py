# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stopping a running download cleanly, on SIGTERM or SIGINT.

The contract (relied on by the pod's entrypoint): while a download module holds
``<state_dir>/<downloader>.run.lock`` that file holds the module's PID. SIGTERM (or SIGINT) to
that PID makes the module stop within a couple of seconds: aria2c gets SIGTERM and saves its
control files, every ranged download has its part journal current, the models log gets one
line saying the run was stopped and resumes at the next start, every unfinished entry's result
says so, and the module exits with its result.

Killing ``ansible-playbook`` (or its process group) does not reach the module: ansible's
worker calls setsid() (and an async job's wrapper daemonizes), so the module lives in a
session of its own. Signal the PID in the run lock instead.

The handlers only set an event; the download loops look at it between chunks and polls.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """``with StopSignals() as stop:`` installs the handlers (main thread only) and restores
    the previous ones on exit. ``stop.event`` is what the loops watch; ``stop.name`` the
    signal that arrived (\"SIGTERM\")."""

    def __init__(self):
        self.event = threading.Event()
        self.name = None
        self._previous = {}

    @property
    def requested(self):
        return self.event.is_set()

    def _handle(self, signum, _frame):
        self.name = signal.Signals(signum).name
        self.event.set()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
