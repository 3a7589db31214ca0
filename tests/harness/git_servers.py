"""Git servers on loopback, speaking git's real protocols (no internet, no mocks of git).

    with SmartHttpGit(root, user="user", password="tok") as server:   # git http-backend + Basic auth
        server.url("NodeA.git")                # http://127.0.0.1:<port>/NodeA.git (no credentials)
        server.url("NodeA.git", auth=True)     # http://user:tok@127.0.0.1:<port>/NodeA.git
        server.url("NodeA.git", user="bot", password="x")   # any credentials
        server.requests                        # [{"method", "path", "authorized", "authorization"}]
    SmartHttpGit(root, password="tok")         # any user name with that password (a token)
    SmartHttpGit(root, stall_fetch=True)       # answers the ref lookup, never the pack request
    with GitDaemon(root) as daemon:            # git daemon, git://127.0.0.1:<port>/<name>
        daemon.url("NodeA.git")
    with SilentServer() as silent:             # accepts connections, never answers a byte
        silent.url("NodeA.git", scheme="http")
    with RedirectingServer(other.url("")) as hop:   # 401 until credentials come, then redirects
        hop.url("NodeA.git", user="u", password="p")
    proxy = CountingProxy(daemon.port)         # TCP proxy; proxy.downstream = bytes the server sent
    processes_with("127.0.0.1:1234")           # live processes whose command line has that text

``publish(repo, root)`` puts a bare copy of a harness ``GitRepo`` under root, the layout both
servers serve from; ``refresh(root, name, repo)`` pushes the repo's new commits there.

The smart-HTTP server runs ``git http-backend`` as a CGI for every request (protocol v2
included), so clones and fetches go through the same code path as on GitHub-like hosts;
``delay`` holds each answer back to keep a clone running long enough for ``ps`` to see it.
"""

import base64
import gzip
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from .git_repos import git
from .net import free_port, wait_for_port


def publish(repo, root, name=None):
    """A bare copy of repo at root/<name> (default <repo name>.git); returns the name."""
    name = name or f"{repo.name}.git"
    target = Path(root) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    git(target.parent, "clone", "-q", "--bare", str(repo.path), str(target))
    return name


def refresh(root, name, repo):
    """Push every branch and tag of repo to the published copy root/<name>."""
    git(
        repo.path,
        "push",
        "-q",
        "--force",
        str(Path(root) / name),
        "refs/heads/*:refs/heads/*",
        "refs/tags/*:refs/tags/*",
    )


class _GitCGI(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        self._serve(b"")

    def do_POST(self):
        self._serve(self._read_body())

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _is_fetch(self, body):
        """A pack request (protocol v2 `command=fetch`, or v0's want lines), not the ref lookup."""
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return b"command=fetch" in body or (b"want " in body and b"command=" not in body)

    def _serve(self, body):
        server = self.server.owner
        authorization = self.headers.get("Authorization")
        authorized = server.authorizes(authorization)
        path, _sep, query = self.path.partition("?")
        server.requests.append(
            {"method": self.command, "path": path, "authorized": authorized, "authorization": authorization}
        )
        if server.delay:
            time.sleep(server.delay)
        if not authorized:
            message = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        if server.stall_fetch and path.endswith("/git-upload-pack") and self._is_fetch(body):
            server.stopping.wait(600)
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": server.user or "",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _sep:
            head, _sep, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _colon, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class SmartHttpGit:
    """git's smart HTTP protocol over ``git http-backend``, on 127.0.0.1, Basic auth optional.

    ``user`` and ``password``: exactly those credentials; ``password`` alone: any user name with
    it (how hosts take a token); neither: no credentials asked. ``stall_fetch``: the pack request
    (POST .../git-upload-pack) is accepted and never answered, the ref lookup is.
    """

    def __init__(self, root, user=None, password=None, delay=0.0, stall_fetch=False):
        self.root = Path(root)
        self.user, self.password, self.delay = user, password, delay
        self.stall_fetch = stall_fetch
        self.stopping = threading.Event()
        self.requests = []
        self.port = None
        self._server = None
        self._thread = None

    def authorizes(self, authorization):
        if self.user is None and self.password is None:
            return True
        if not (authorization or "").startswith("Basic "):
            return False
        try:
            user, _sep, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except ValueError:
            return False
        return (self.user is None or user == self.user) and password == (self.password or "")

    def url(self, name, auth=False, user=None, password=None):
        """The URL of name. With auth, it carries the server's credentials percent-encoded; with
        user (and password), those exactly as given, a raw '@' included, as a user may paste them."""
        userinfo = ""
        if auth:
            userinfo = urllib.parse.quote(self.user, safe="")
            if self.password is not None:
                userinfo += ":" + urllib.parse.quote(self.password, safe="")
            userinfo += "@"
        elif user is not None:
            userinfo = f"{user}:{password}@" if password is not None else f"{user}@"
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}"

    def start(self):
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GitCGI)
        self._server.daemon_threads = True
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Redirect(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        self._answer(302)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(307)

    def _answer(self, status):
        owner = self.server.owner
        authorization = self.headers.get("Authorization")
        owner.requests.append({"method": self.command, "path": self.path, "authorization": authorization})
        if authorization is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
        else:
            self.send_response(status)
            self.send_header("Location", owner.target.rstrip("/") + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


class RedirectingServer:
    """A host that asks for credentials, then sends every request on to ``target`` (another
    host): whatever git sends there is recorded by that server."""

    def __init__(self, target):
        self.target = target
        self.requests = []
        self.port = None
        self._server = None

    def url(self, name, user=None, password=None):
        userinfo = f"{user}:{password}@" if user else ""
        return f"http://{userinfo}127.0.0.1:{self.port}/{name}"

    def __enter__(self):
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
        self._server.daemon_threads = True
        self._server.owner = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


class GitDaemon:
    """``git daemon`` exporting every repository under root, on a free loopback port."""

    def __init__(self, root):
        self.root = Path(root)
        self.port = None
        self._proc = None

    def url(self, name):
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self):
        self.port = free_port()
        self._proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
                f"--base-path={self.root}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                str(self.root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, process=self._proc)
        return self

    def stop(self):
        # The daemon forks a child per connection: the whole process group goes.
        if self._proc:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)
            self._proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte: a host that hangs."""

    def __init__(self):
        self._sock = socket.socket()
        self._held = []
        self._stop = threading.Event()
        self._thread = None

    @property
    def port(self):
        return self._sock.getsockname()[1]

    def url(self, name, scheme="http"):
        return f"{scheme}://127.0.0.1:{self.port}/{name}"

    def start(self):
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self):
        while not self._stop.is_set():
            try:
                self._held.append(self._sock.accept()[0])
            except OSError:
                continue

    @property
    def connections(self):
        return len(self._held)

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
        for conn in self._held:
            conn.close()
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


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
