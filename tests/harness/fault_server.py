"""An HTTP origin that misbehaves on purpose, speaking real HTTP/1.1 on a loopback port.

Paths (``<name>`` is a file under ``files_dir``; Range requests are honoured wherever a body is
served normally):

    /files/<name>                     served normally
    /reset-once/<name>                first GET sends the headers and half the body, then resets
                                      the connection (RST); later requests are served normally
    /fail/<code>/<times>/<name>       the first <times> requests (HEAD or GET) answer <code>
    /fail-get/<code>/<times>/<name>   HEAD is fine, the first <times> GETs answer <code>
    /status/<code>/<name>             always answers <code> (404, 403, ...)
    /html/<name>                      200 text/html login page instead of the file
    /disguised-html/<name>            200 application/octet-stream whose body is an HTML page
    /chunked/<name>                   no Content-Length, no ranges (size unknown in advance)
    /presigned/<name>                 GET works, HEAD answers 403 (an S3 presigned GET URL)
    /to-presigned/<name>              302 (absolute) to /presigned/<name>

``requests`` records (method, path, Range, Authorization) of every request.
"""
import re
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .net import free_port

ERROR_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in</body></html>\n"


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
        path = self.path.split("?", 1)[0]
        with server.lock:
            server.requests.append((self.command, path, self.headers.get("Range"),
                                    self.headers.get("Authorization")))
            count = server.counts[path] = server.counts.get(path, 0) + 1
            get_count = count
            if not head:
                get_count = server.get_counts[path] = server.get_counts.get(path, 0) + 1
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
            return self._serve(name, head, reset=not head and get_count == 1)
        if kind in ("html", "disguised-html"):
            ctype = "text/html; charset=utf-8" if kind == "html" else "application/octet-stream"
            return self._send(200, ERROR_PAGE, head, ctype)
        if kind == "chunked":
            return self._chunked(name, head)
        if kind == "presigned":
            # Like an S3 presigned GET URL: the signature covers the method, so HEAD is refused.
            return self._plain(403, head) if head else self._serve(name, head)
        if kind == "to-presigned":
            self.send_response(302)
            self.send_header("Location", "%s/presigned/%s?X-Amz-Signature=stand-in" % (self.server.url, name))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._plain(404, head)

    def _file(self, name):
        target = (self.server.files_dir / name).resolve()
        if self.server.files_dir not in target.parents or not target.is_file():
            return None
        return target

    def _plain(self, code, head):
        body = ("%d error\n" % code).encode()
        self._send(code, body, head, "text/plain")

    def _send(self, code, body, head, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, name, head, reset=False):
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
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            code = 206
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if head:
            return None
        with open(target, "rb") as handle:
            handle.seek(start)
            left = end - start + 1
            if reset:
                left //= 2
            while left:
                chunk = handle.read(min(left, 64 * 1024))
                self.wfile.write(chunk)
                left -= len(chunk)
        if reset:
            self.wfile.flush()
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


class FaultServer:
    """``with FaultServer(files_dir) as server:``; ``server.url`` is the base URL."""

    def __init__(self, files_dir, port=None):
        self.files_dir = Path(files_dir).resolve()
        self.port = port or free_port()
        self.httpd = None
        self.thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def requests(self):
        with self.httpd.lock:
            return list(self.httpd.requests)

    def start(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files_dir = self.files_dir
        self.httpd.url = self.url
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.counts = {}
        self.httpd.get_counts = {}
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
