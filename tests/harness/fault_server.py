"""An HTTP origin that misbehaves on purpose, speaking real HTTP/1.1 on a loopback port.

Fixed paths (``<name>`` is a file under ``files_dir``; Range requests are honoured wherever a
body is served normally):

    /files/<name>                     served normally
    /reset-once/<name>                first GET sends the headers and half the body, then resets
                                      the connection (RST); later requests are served normally
    /short/<name>                     every GET announces the full length but closes after a
                                      tenth of it (a short body); HEAD is fine
    /fail/<code>/<times>/<name>       the first <times> requests (HEAD or GET) answer <code>
    /fail-get/<code>/<times>/<name>   HEAD is fine, the first <times> GETs answer <code>
    /status/<code>/<name>             always answers <code> (404, 403, ...)
    /html/<name>                      200 text/html login page instead of the file
    /disguised-html/<name>            200 application/octet-stream whose body is an HTML page
    /chunked/<name>                   no Content-Length, no ranges (size unknown in advance)
    /presigned/<name>                 GET works, HEAD answers 403 (an S3 presigned GET URL)
    /to-presigned/<name>              302 (absolute) to /presigned/<name>

Scripted paths: ``server.route(path, rule)`` makes every request for ``path`` (query ignored)
answer ``rule(request)``, one of :class:`Serve`, :class:`Redirect`, :class:`Status`, so HEAD,
a plain GET and each ranged GET can be answered differently (``request.method``,
``request.range``, ``request.count``).

With ``tls=True`` the same port also speaks HTTPS (the first byte of a connection tells a TLS
handshake from plain HTTP), so ``https://host:port`` and ``http://host:port`` are one server
and a redirect can change only the scheme. ``server.ca_file`` is the certificate to trust.

``requests`` records every request as a :class:`Request` (method, path, range,
authorization, host, scheme, server): which server it reached, the Host it was meant for and
the Authorization it carried, so tests can prove where a token went and where it did not.
"""

import collections
import re
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .net import free_port

ERROR_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in</body></html>\n"

Request = collections.namedtuple("Request", "method path range authorization host scheme server query count headers")
Serve = collections.namedtuple("Serve", "name")
Redirect = collections.namedtuple("Redirect", "location code", defaults=(302,))
Status = collections.namedtuple("Status", "code")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._dispatch(head=True)

    def do_GET(self):
        self._dispatch(head=False)

    def _dispatch(self, head):
        server = self.server
        path, _sep, query = self.path.partition("?")
        with server.lock:
            count = server.counts[path] = server.counts.get(path, 0) + 1
            get_count = count
            if not head:
                get_count = server.get_counts[path] = server.get_counts.get(path, 0) + 1
            request = Request(
                self.command,
                path,
                self.headers.get("Range"),
                self.headers.get("Authorization"),
                self.headers.get("Host"),
                getattr(self.connection, "scheme", "http"),
                server.label,
                query,
                count,
                dict(self.headers.items()),
            )
            server.requests.append(request)
            rule = server.routes.get(path)
        if rule is not None:
            return self._answer(rule(request), head)
        match = re.match(r"^/fail/(\d{3})/(\d+)/(.+)$", path)
        if match:
            if count <= int(match.group(2)):
                return self._plain(int(match.group(1)), head)
            return self._serve(match.group(3), head)
        match = re.match(r"^/fail-get/(\d{3})/(\d+)/(.+)$", path)
        if match:
            if not head and get_count <= int(match.group(2)):
                return self._plain(int(match.group(1)), head)
            return self._serve(match.group(3), head)
        match = re.match(r"^/status/(\d{3})/(.+)$", path)
        if match:
            return self._plain(int(match.group(1)), head)
        kind, _slash, name = path.lstrip("/").partition("/")
        if kind == "files":
            return self._serve(name, head)
        if kind == "reset-once":
            return self._serve(name, head, cut="reset" if not head and get_count == 1 else None)
        if kind == "short":
            return self._serve(name, head, cut=None if head else "short")
        if kind in ("html", "disguised-html"):
            ctype = "text/html; charset=utf-8" if kind == "html" else "application/octet-stream"
            return self._send(200, ERROR_PAGE, head, ctype)
        if kind == "chunked":
            return self._chunked(name, head)
        if kind == "presigned":
            # Like an S3 presigned GET URL: the signature covers the method, so HEAD is refused.
            return self._plain(403, head) if head else self._serve(name, head)
        if kind == "to-presigned":
            return self._answer(Redirect(f"{self.server.url}/presigned/{name}?X-Amz-Signature=stand-in"), head)
        return self._plain(404, head)

    def _answer(self, answer, head):
        if isinstance(answer, Serve):
            return self._serve(answer.name, head)
        if isinstance(answer, Redirect):
            self.send_response(answer.code)
            self.send_header("Location", answer.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._plain(answer.code, head)

    def _file(self, name):
        target = (self.server.files_dir / name).resolve()
        if self.server.files_dir not in target.parents or not target.is_file():
            return None
        return target

    def _plain(self, code, head):
        body = (f"{code} error\n").encode()
        self._send(code, body, head, "text/plain")

    def _send(self, code, body, head, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, name, head, cut=None):
        target = self._file(name)
        if target is None:
            return self._plain(404, head)
        size = target.stat().st_size
        start, end = 0, size - 1
        code = 200
        match = re.match(r"^bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            code = 206
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{size:x}-{int(target.stat().st_mtime):x}"')
        self.send_header("Content-Length", str(end - start + 1))
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return None
        left = end - start + 1
        if cut == "reset":
            left //= 2
        elif cut == "short":
            left = max(1, left // 10)
        with open(target, "rb") as handle:
            handle.seek(start)
            while left:
                chunk = handle.read(min(left, 64 * 1024))
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return None
                with self.server.lock:
                    self.server.body_bytes += len(chunk)
                left -= len(chunk)
        if cut:
            self.wfile.flush()
            if cut == "reset":
                # SO_LINGER 0: close sends RST, the way a dropped proxy connection looks.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        return None

    def _chunked(self, name, head):
        target = self._file(name)
        if target is None:
            return self._plain(404, head)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if head:
            return
        with open(target, "rb") as handle:
            for chunk in iter(lambda: handle.read(64 * 1024), b""):
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    return
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls_context = None

    def get_request(self):
        sock, address = super().get_request()
        sock.settimeout(10)
        scheme = "http"
        if self.tls_context is not None:
            try:
                first = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                first = b""
            if first == b"\x16":  # a TLS handshake record
                # The handshake happens on the first read, in the request's own thread.
                sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                scheme = "https"
        return _Tagged(sock, scheme), address


class _Tagged:
    """A socket with a `scheme` attribute (ssl sockets and plain sockets take no new attributes)."""

    def __init__(self, sock, scheme):
        self._sock = sock
        self.scheme = scheme

    def __getattr__(self, name):
        return getattr(self._sock, name)


def make_certificate(directory, names=("127.0.0.1", "localhost")):
    """A self-signed certificate for `names`; returns (cert_file, key_file)."""
    directory = Path(directory)
    cert, key = directory / "cert.pem", directory / "key.pem"
    alt = ",".join((f"IP:{n}") if re.match(r"^[0-9.]+$", n) else (f"DNS:{n}") for n in names)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={names[0]}",
            "-addext",
            f"subjectAltName={alt}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


class FaultServer:
    """``with FaultServer(files_dir) as server:``; ``server.url`` is the base URL."""

    def __init__(self, files_dir, port=None, label=None, tls=False, host="127.0.0.1"):
        self.files_dir = Path(files_dir).resolve()
        self.host = host
        self.port = port or free_port()
        self.label = label or f"server:{self.port}"
        self.tls = tls
        self.ca_file = None
        self._certs = None
        self.httpd = None
        self.thread = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def https_url(self):
        return f"https://{self.host}:{self.port}"

    @property
    def authority(self):
        return f"{self.host}:{self.port}"

    @property
    def requests(self):
        with self.httpd.lock:
            return list(self.httpd.requests)

    @property
    def body_bytes(self):
        """Body bytes written to clients so far (every file body this server sent)."""
        with self.httpd.lock:
            return self.httpd.body_bytes

    def route(self, path, rule):
        """Answer every request for `path` with rule(request) -> Serve | Redirect | Status."""
        with self.httpd.lock:
            self.httpd.routes[path] = rule

    def start(self):
        self.httpd = _Server((self.host, self.port), _Handler)
        if self.tls:
            self._certs = tempfile.TemporaryDirectory(prefix="aiclipse-tls-")
            cert, key = make_certificate(self._certs.name)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.httpd.tls_context = context
            self.ca_file = cert
        self.httpd.files_dir = self.files_dir
        self.httpd.url = self.url
        self.httpd.label = self.label
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.routes = {}
        self.httpd.counts = {}
        self.httpd.get_counts = {}
        self.httpd.body_bytes = 0
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self._certs:
            self._certs.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
