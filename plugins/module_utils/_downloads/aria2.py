# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive one aria2c process for a whole batch of downloads over its JSON-RPC interface.

Why RPC rather than ``aria2c -i file``: downloads (and their Authorization headers) are handed
over on a loopback socket, so a token never sits in a file or in argv; and aria2c reports each
download's own error code, message and sizes, which the per-entry results need.

The RPC secret is written to a 0600 config file that is deleted as soon as aria2c listens, and
``--stop-with-process`` makes aria2c exit when the module's process dies (a killed run must not
leave a downloader writing behind it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.request

# aria2's exit/error codes worth explaining in a result (see aria2c(1) "EXIT STATUS").
ERROR_HINTS = {
    "2": "timed out",
    "3": "resource not found",
    "6": "network problem",
    "9": "not enough disk space",
    "13": "file already exists",
    "17": "file I/O error (is the disk full?)",
    "19": "name resolution failed",
    "22": "bad HTTP response header",
    "24": "HTTP authorization failed",
}

QUERY_RE = re.compile(r"(\w+://[^\s?#]+)\?[^\s#]*")


class Aria2Error(Exception):
    """aria2c could not be started or stopped talking."""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Aria2Session:
    """One aria2c process: ``with Aria2Session(binary, options, workdir) as s: s.add(...)``."""

    def __init__(self, binary, options, workdir, startup_timeout=15.0):
        self.binary = binary
        self.options = options
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.process = None
        self.port = None
        self._secret = secrets.token_hex(16)
        self._ids = 0

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        for _attempt in range(3):
            self.port = _free_port()
            fd, conf = tempfile.mkstemp(prefix=".aria2-", suffix=".conf", dir=self.workdir)
            try:
                with os.fdopen(fd, "w") as handle:  # mkstemp makes it 0600
                    handle.write("rpc-secret=%s\n" % self._secret)
                argv = [self.binary, "--conf-path=%s" % conf, "--enable-rpc=true",
                        "--rpc-listen-all=false", "--rpc-listen-port=%d" % self.port,
                        "--stop-with-process=%d" % os.getpid(), "--quiet=true"]
                argv += ["--%s=%s" % (key, value) for key, value in sorted(self.options.items())]
                self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE, cwd=self.workdir)
                if self._wait_listening():
                    return
            finally:
                os.unlink(conf)
        raise Aria2Error("aria2c did not start: %s" % self._stderr())

    def _stderr(self):
        if self.process is None or self.process.poll() is None:
            return ""
        return (self.process.stderr.read() or b"").decode("utf-8", "replace").strip()[-500:]

    def _wait_listening(self):
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # most likely the port was taken: try another
            try:
                self.call("aria2.getVersion")
                return True
            except (OSError, ValueError):
                time.sleep(0.05)
        self.process.kill()
        self.process.wait()
        return False

    def call(self, method, *params):
        self._ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": str(self._ids), "method": method,
                           "params": ["token:%s" % self._secret] + list(params)}).encode()
        request = urllib.request.Request("http://127.0.0.1:%d/jsonrpc" % self.port, data=body,
                                         headers={"Content-Type": "application/json"})
        # The RPC endpoint is on loopback: never let an http_proxy setting route it elsewhere.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as resp:
            answer = json.loads(resp.read().decode())
        if "error" in answer:
            raise Aria2Error("aria2c refused %s: %s" % (method, answer["error"].get("message")))
        return answer["result"]

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def add(self, url, directory, out, headers=()):
        """Queue one download; returns its gid."""
        options = {"dir": directory, "out": out}
        if headers:
            options["header"] = list(headers)
        return self.call("aria2.addUri", [url], options)

    def statuses(self):
        """gid -> status dict for every download aria2c knows (active, waiting, stopped)."""
        keys = ["gid", "status", "totalLength", "completedLength", "downloadSpeed", "errorCode",
                "errorMessage"]
        found = {}
        for item in self.call("aria2.tellActive", keys):
            found[item["gid"]] = item
        for item in self.call("aria2.tellWaiting", 0, 100000, keys):
            found[item["gid"]] = item
        for item in self.call("aria2.tellStopped", 0, 100000, keys):
            found[item["gid"]] = item
        return found

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            # SIGTERM is aria2c's graceful stop (control files are saved) and, unlike the RPC
            # shutdown call, does not sit out a fixed few-second grace period.
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()


def describe_error(status):
    """A person-readable reason for a failed aria2 download status.

    URL queries are cut from aria2's message: signed URLs and ``?token=`` URLs carry
    credentials there, and results and logs are read by people.
    """
    code = str(status.get("errorCode", ""))
    message = QUERY_RE.sub(r"\1?...", (status.get("errorMessage") or "").strip())
    hint = ERROR_HINTS.get(code, "")
    if hint and hint.lower() not in message.lower():
        message = "%s (%s)" % (message, hint) if message else hint
    return "aria2c error %s: %s" % (code or "?", message or "download failed")
