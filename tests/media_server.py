"""A stand-in platform media server on 127.0.0.1, and small media files made with Pillow.

Routes are plain functions of the request handler; every request the server receives is kept in
`requests` (path and headers), so a test can say who fetched what, and how often.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from PIL import Image, ImageDraw

Route = Callable[[BaseHTTPRequestHandler], None]


def png_bytes(size=(320, 180), *, text: str = "WIN A FREE iPHONE") -> bytes:
    image = Image.new("RGB", size, "#ff7a50")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, size[1] * 2 // 3, size[0], size[1]), fill="#2d3a4a")
    draw.ellipse((size[0] - 110, 20, size[0] - 30, 100), fill="#fff3b0")
    draw.text((16, 16), text, fill="#ffffff", font_size=max(12, size[0] // 18))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


PNG = png_bytes()
MP4_HEADER = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64


def send(handler, body: bytes, content_type: str = "image/png", status: int = 200) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def redirect(location: str, status: int = 302) -> Route:
    def route(handler):
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def serve_bytes(body: bytes, content_type: str = "image/png") -> Route:
    return lambda handler: send(handler, body, content_type)


class MediaServer:
    def __init__(self, routes: dict[str, Route] | None = None):
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (the http.server API)
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    send(self, b"not here", "text/plain", status=404)
                    return
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should have

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path


@contextmanager
def media_server(routes: dict[str, Route] | None = None):
    server = MediaServer(routes)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def drip(chunks: int, every: float, body: bytes = b"\x89PNG\r\n\x1a\n") -> Route:
    """A body that arrives a little at a time, without a Content-Length."""

    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for _ in range(chunks):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
            handler.wfile.flush()
            time.sleep(every)
        handler.wfile.write(b"0\r\n\r\n")

    return route


class LoopbackOnly(httpx.HTTPTransport):
    """The tests' network: connections to 127.0.0.1 only. The fetcher connects to the address it
    checked, so a regression that let a private address through fails here, before any packet
    leaves the machine."""

    def handle_request(self, request):
        if request.url.host != "127.0.0.1":
            raise AssertionError(f"the fetcher tried to connect to {request.url.host}")
        return super().handle_request(request)


def loopback_client() -> httpx.Client:
    return httpx.Client(transport=LoopbackOnly(), follow_redirects=False, trust_env=False)
