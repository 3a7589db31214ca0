# Copyright: (c) 2026, aiclipse
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive one aria2c process for a whole batch of downloads over its JSON-RPC interface.

aria2c never receives a token or any other secret header: ``add`` takes a URL and a file name,
nothing else. Entries that need a token are resolved (or downloaded) by http_origin.py first.

Why RPC rather than ``aria2c -i file``: aria2c reports each download's own error code,
message and sizes, which the per-entry results need, and downloads can be added while others
run (retries). The RPC secret is written to a 0600 config file that is deleted as soon as
aria2c listens; ``--stop-with-process`` makes aria2c exit (saving its control files) when the
module's process dies, so a killed run never leaves a downloader writing behind it.

aria2c's final error for a download is often generic ("errorCode=1 No URI available." after
every try failed); what actually happened is in its log. The log is read from aria2c's
stdout (never written to disk: it holds signed URLs) and the last cause per URL is kept, with
the query cut off, to explain the failure (``explain``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

from ansible.module_utils.common.text.formatters import bytes_to_human

QUERY_RE = re.compile(r"(\w+://[^\s?#]+)\?[^\s#]*")
_LOG_URI = re.compile(r"URI=(\S+)")
_LOG_CAUSE = re.compile(r"errorCode=(\d+)\s+(.*)$")


class Aria2Error(Exception):
    """aria2c could not be started or stopped talking."""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def strip_query(url):
    return url.split("?", 1)[0].split("#", 1)[0]


class Aria2Session:
    """One aria2c process: ``with Aria2Session(binary, options, workdir) as s: s.add(...)``."""

    def __init__(self, binary, options, workdir, startup_timeout=15.0):
        self.binary = binary
        self.options = options
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.process = None
        self.port = None
        self.causes = {}
        self._secret = secrets.token_hex(16)
        self._ids = 0
        self._reader = None

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
                    handle.write(f"rpc-secret={self._secret}\n")
                argv = [
                    self.binary,
                    f"--conf-path={conf}",
                    "--enable-rpc=true",
                    "--rpc-listen-all=false",
                    f"--rpc-listen-port={self.port}",
                    f"--stop-with-process={os.getpid()}",
                    "--quiet=true",
                    "--log=-",
                    "--log-level=warn",
                ]
                argv += [f"--{key}={value}" for key, value in sorted(self.options.items())]
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.workdir
                )
                self._reader = threading.Thread(target=self._read_log, args=(self.process.stdout,), daemon=True)
                self._reader.start()
                if self._wait_listening():
                    return
            finally:
                os.unlink(conf)
        raise Aria2Error(f"aria2c did not start: {self._stderr()}")

    def _read_log(self, stream):
        """Keep the last error cause aria2c logged per URL (query cut off)."""
        uri = None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            found = _LOG_URI.search(line)
            if found:
                uri = strip_query(found.group(1))
                continue
            cause = _LOG_CAUSE.search(line)
            if cause and uri:
                self.causes[uri] = (cause.group(1), QUERY_RE.sub(r"\1?...", cause.group(2).strip()))

    def cause(self, url):
        """(code, message) of the last error aria2c logged for url, or None."""
        return self.causes.get(strip_query(url))

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
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": str(self._ids),
                "method": method,
                "params": [f"token:{self._secret}"] + list(params),
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/jsonrpc", data=body, headers={"Content-Type": "application/json"}
        )
        # The RPC endpoint is on loopback: never let an http_proxy setting route it elsewhere.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as resp:
            answer = json.loads(resp.read().decode())
        if "error" in answer:
            raise Aria2Error(f"aria2c refused {method}: {answer['error'].get('message')}")
        return answer["result"]

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def add(self, url, directory, out, in_order=False):
        """Queue one download of a tokenless URL; returns its gid. ``in_order`` has aria2c
        fetch the lowest missing pieces first (its ``inorder`` piece selector) instead of
        spreading its connections over the file, so the file is complete from its first byte
        on as it goes: that prefix can be hashed while the rest downloads."""
        options = {"dir": directory, "out": out}
        if in_order:
            options["stream-piece-selector"] = "inorder"
        return self.call("aria2.addUri", [url], options)

    def statuses(self):
        """gid -> status dict for every download aria2c knows (active, waiting, stopped);
        active ones also have ``bitfield`` (finished pieces, hex) and ``pieceLength``."""
        keys = ["gid", "status", "totalLength", "completedLength", "downloadSpeed", "errorCode", "errorMessage"]
        found = {}
        for item in self.call("aria2.tellActive", keys + ["bitfield", "pieceLength"]):
            found[item["gid"]] = item
        for item in self.call("aria2.tellWaiting", 0, 100000, keys):
            found[item["gid"]] = item
        for item in self.call("aria2.tellStopped", 0, 100000, keys):
            found[item["gid"]] = item
        return found

    def stop(self, timeout=15):
        """SIGTERM: aria2c's graceful stop (control files are saved, within a second or so);
        unlike the RPC shutdown call it does not sit out a fixed grace period."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(2)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


class ControlFile:
    """What an aria2 control file (``<file>.aria2``) records: ``piece_length``, ``total``,
    ``bitfield`` (bytes, finished pieces, highest bit of the first byte is piece 0) and
    ``in_flight_bytes`` (finished 16 KiB blocks of pieces still in flight).

    Format (aria2 docs, "Control File (*.aria2) Format", version 1 is big-endian): version,
    extension, info hash, piece length, total length, upload length, bitfield of finished
    pieces, then in-flight pieces each with a bitfield of finished 16 KiB blocks.
    """

    def __init__(self, piece_length, total, bitfield, in_flight_bytes):
        self.piece_length = piece_length
        self.total = total
        self.bitfield = bitfield
        self.in_flight_bytes = in_flight_bytes

    @classmethod
    def read(cls, path):
        """The control file at path, or None when it is missing or cannot be parsed."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            version = struct.unpack_from(">H", data, 0)[0]
            order = ">" if version == 1 else "="
            pos = 2 + 4
            info_hash_length = struct.unpack_from(order + "I", data, pos)[0]
            pos += 4 + info_hash_length
            piece_length, total = struct.unpack_from(order + "IQ", data, pos)
            pos += 4 + 8 + 8
            bitfield_length = struct.unpack_from(order + "I", data, pos)[0]
            pos += 4
            bitfield = data[pos : pos + bitfield_length]
            if len(bitfield) != bitfield_length:
                return None
            pos += bitfield_length
            in_flight_bytes = 0
            in_flight = struct.unpack_from(order + "I", data, pos)[0]
            pos += 4
            for _piece in range(in_flight):
                _index, _length, blocks_length = struct.unpack_from(order + "III", data, pos)
                pos += 12
                blocks = data[pos : pos + blocks_length]
                pos += blocks_length
                in_flight_bytes += 16 * 1024 * sum(bin(byte).count("1") for byte in blocks)
            return cls(piece_length, total, bitfield, in_flight_bytes)
        except (OSError, struct.error, IndexError):
            return None

    def finished_pieces(self):
        return [i for i in range(len(self.bitfield) * 8) if self.bitfield[i // 8] & (0x80 >> (i % 8))]

    def done_bytes(self):
        done = sum(
            min(self.piece_length, self.total - i * self.piece_length)
            for i in self.finished_pieces()
            if i * self.piece_length < self.total
        )
        return min(done + self.in_flight_bytes, self.total)


def control_progress(path):
    """Bytes an aria2 control file (``<file>.aria2``) says are on disk, or None."""
    control = ControlFile.read(path)
    return None if control is None else control.done_bytes()


# What aria2's error codes (aria2c(1) "EXIT STATUS") mean for the person reading a result.
_MEANINGS = {
    "2": "timed out: {host} sent no data for too long, also after every retry",
    "3": "not found at {host} (HTTP 404)",
    "5": "too slow: {host} stayed under the lowest allowed speed",
    "6": "network problem talking to {host}",
    "7": "stopped before it finished",
    "8": "{host} does not support resuming (no byte ranges) and a partial download was there; it starts over next time",
    "9": "not enough disk space",
    "13": "a file is already in the way in staging",
    "16": "cannot create the staging file",
    "17": "cannot write the staging file",
    "18": "cannot create the staging folder",
    "19": "cannot resolve the host name {host}",
    "22": "{host} answered with an unexpected HTTP status or header",
    "23": "too many redirects from {host}",
    "24": "HTTP authorization failed at {host} (HTTP 401)",
    "29": "{host} is overloaded or in maintenance (HTTP 503)",
    "32": "checksum mismatch",
}
_CAUSES = (
    (
        re.compile(r"Got EOF from the server|EOF from peer|Connection reset|reset by peer", re.I),
        "{host} closed the connection before the whole file was sent (a short body)",
    ),
    (re.compile(r"Invalid range header|Range", re.I), "{host} answered a byte range with other bytes"),
    (re.compile(r"No space left|Not enough space|disk", re.I), "not enough disk space"),
    (re.compile(r"status=(\d{3})", re.I), "{host} answered HTTP {status}"),
    (re.compile(r"timed? ?out|Timeout", re.I), "timed out waiting for {host}"),
    (re.compile(r"Connection refused|Failed to connect|connect", re.I), "cannot connect to {host}"),
)


def explain(status, cause=None, host="the server", done=None, total=None):
    """A person-readable reason for a failed aria2 download: what happened, not just aria2's
    code. ``cause`` is the (code, message) aria2c logged last for the URL; ``done``/``total``
    the bytes in staging and the file's size. URL queries never appear (signed URLs carry
    credentials there)."""
    code = str(status.get("errorCode", "") or "")
    message = QUERY_RE.sub(r"\1?...", (status.get("errorMessage") or "").strip())
    detail = message
    if cause and (code in ("1", "") or cause[0] == code or not message):
        detail = cause[1]
        code = code if code not in ("1", "") else cause[0]
    what = None
    for pattern, meaning in _CAUSES:
        found = pattern.search(detail or "")
        if found:
            what = meaning.format(host=host, status=found.group(1) if found.groups() else "")
            break
    if what is None:
        what = _MEANINGS.get(code, "").format(host=host) or "the download failed"
    if total:
        what += f" ({bytes_to_human(done or 0)} of {bytes_to_human(total)} in staging; the next run resumes)"
    raw = f"aria2c error {status.get('errorCode') or '?'}{(f': {message}' if message else '')}"
    if cause and cause[1] and cause[1] not in raw:
        raw += f"; last cause: {cause[1]}"
    return f"{what} [{raw}]"


def describe_error(status):
    """The short form of explain() for a status alone (kept for callers without context)."""
    return explain(status)
