"""Real git servers on loopback for the AUTO_UPDATE tests and the restart benchmark
(tests/harness/git_servers.py serves the custom-node and ComfyUI clone tests).

- ``GitDaemon(base)``: ``git daemon`` serving every bare repository under ``base`` over git://.
- ``SmartHttpGit(base, token=...)``: git's smart HTTP protocol (``git http-backend`` run as a
  CGI by a small threaded HTTP server), optionally behind HTTP Basic auth with a token, and
  optionally stalling the pack request (the ref lookup is answered, the fetch hangs).
- ``CountingProxy(port)``: a TCP proxy that counts the bytes the server sends, so a test can
  say what a fetch cost on the wire.
- ``SilentServer()``: accepts connections and never answers (a fetch or ls-remote that hangs).
- ``processes_with(text)``: live processes whose command line contains text (what a killed
  update may have left behind).
"""
import base64
import gzip
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .net import free_port, wait_for_port

GIT = shutil.which("git") or "/usr/bin/git"


class GitDaemon:
    """``with GitDaemon(base) as daemon: daemon.url("config.git")``."""

    def __init__(self, base):
        self.base = Path(base)
        self.port = free_port()
        self.proc = None

    def url(self, name):
        return f"git://127.0.0.1:{self.port}/{name}"

    def __enter__(self):
        self.proc = subprocess.Popen(
            [GIT, "daemon", "--reuseaddr", "--export-all", "--informative-errors", "--listen=127.0.0.1",
             f"--port={self.port}", f"--base-path={self.base}", str(self.base)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_for_port(self.port, process=self.proc)
        return self

    def __exit__(self, *_exc):
        os.killpg(self.proc.pid, 9)
        self.proc.wait()


class SmartHttpGit:
    """git's smart HTTP on a loopback port; ``url(name, user=None, secret=None)``.

    With ``token``, every request needs ``Authorization: Basic base64(<any user>:<token>)``;
    ``auth_seen`` lists the Authorization headers received. With ``stall_fetch``, the pack
    request (POST .../git-upload-pack) is accepted and never answered.
    """

    def __init__(self, base, token=None, stall_fetch=False):
        self.base = Path(base)
        self.token = token
        self.stall_fetch = stall_fetch
        self.auth_seen = []
        self.requests = []
        self._stop = threading.Event()
        self.server = None

    def url(self, name, user=None, secret=None):
        userinfo = f"{user}:{secret}@" if user is not None else ""
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}"

    @property
    def port(self):
        return self.server.server_address[1]

    def __enter__(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *_args):
                pass

            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.serve(self)

            def do_POST(self):  # noqa: N802
                outer.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def _authorized(self, header):
        if self.token is None:
            return True
        if not header.startswith("Basic "):
            return False
        try:
            _user, _sep, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secret == self.token

    def serve(self, handler):
        path, _sep, query = handler.path.partition("?")
        header = handler.headers.get("Authorization", "")
        self.requests.append(f"{handler.command} {path}")
        self.auth_seen.append(header)
        if not self._authorized(header):
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="config"')
            handler.end_headers()
            return
        body = self._read_body(handler)
        if self.stall_fetch and path.endswith("/git-upload-pack") and self._is_fetch(handler, body):
            self._stop.wait(600)
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.base),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "REQUEST_METHOD": handler.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": "config-reader",
        }
        if handler.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = handler.headers["Content-Encoding"]
        if handler.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = handler.headers["Git-Protocol"]
        proc = subprocess.run([GIT, "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _sep, payload = proc.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").split("\r\n"):
            name, _sep, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def _is_fetch(handler, body):
        """A pack request (protocol v2 `command=fetch`, or v0's want lines), not the ref lookup."""
        if handler.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return b"command=fetch" in body or (b"want " in body and b"command=" not in body)

    @staticmethod
    def _read_body(handler):
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""


class CountingProxy:
    """A TCP proxy in front of 127.0.0.1:upstream_port; ``downstream`` = bytes the server sent."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.downstream = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self):
        with self._lock:
            self.downstream = 0

    def close(self):
        for sock in [self._listener] + self._sockets:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source, sink, count):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if count:
                    with self._lock:
                        self.downstream += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (sink,):
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass


class SilentServer:
    """Accepts connections and never answers; ``port``. Use as a context manager."""

    def __init__(self):
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._held = []
        self._stop = threading.Event()

    def __enter__(self):
        def accept():
            self._server.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    self._held.append(self._server.accept()[0])
                except OSError:
                    continue

        self._thread = threading.Thread(target=accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._server.close()


def processes_with(text, settle=1.0):
    """Command lines of live processes (zombies excluded) that contain text, after `settle` s."""
    time.sleep(settle)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found
