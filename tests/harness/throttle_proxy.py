"""A TCP proxy on loopback that throttles every connection's downstream bytes.

Put it in front of the moto S3 server to make downloads slow enough to be killed half-way
(moto on loopback is otherwise done before a test can react), the way a real per-connection
limited origin behaves. ``ThrottleProxy(upstream_port, bytes_per_second)``; ``.port``;
``.sent`` counts every byte passed downstream (responses), so tests can measure what a client
fetched - and fetched again after a kill - at the wire. ``.pause()`` holds every response
byte not yet sent (the client then drains what its sockets hold), ``.resume()`` lets them go.
"""

import socket
import threading
import time

from .net import free_port, wait_for_port


class ThrottleProxy:
    def __init__(self, upstream_port, bytes_per_second, port=None):
        self.upstream_port = upstream_port
        self.rate = bytes_per_second
        self.port = port or free_port()
        self._listener = None
        self._stopping = threading.Event()
        self._sockets = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self.sent = 0

    def pause(self):
        self._flowing.clear()

    def resume(self):
        self._flowing.set()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        wait_for_port(self.port)
        return self

    def stop(self):
        self._stopping.set()
        with self._lock:
            for sock in [self._listener] + self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def _accept(self):
        while not self._stopping.is_set():
            try:
                client, _proc = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.rate), daemon=True).start()

    def _pump(self, source, sink, rate):
        chunk = 16384
        started, sent = time.monotonic(), 0
        try:
            while True:
                data = source.recv(chunk)
                if not data:
                    break
                if rate:
                    while not self._flowing.wait(0.1):
                        if self._stopping.is_set():
                            return
                sink.sendall(data)
                if rate:
                    with self._lock:
                        self.sent += len(data)
                    sent += len(data)
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
