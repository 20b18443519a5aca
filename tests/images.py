"""Real image files for tests (built here: no binary fixtures), and a loopback HTTP server that serves them.

The server stands in for the internet the test machines do not have: LangChain's standard image tests download an
image from raw.githubusercontent.com, and image URLs are fetched by the gateway from allow-listed hosts only.
"""

from __future__ import annotations

import http.server
import random
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager


def png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 30, 30), *, noise: bool = False) -> bytes:
    """A valid PNG of one colour, or of random pixels (`noise`: it does not compress, so its size is known)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rng = random.Random(width * height)
    rows = b"".join(b"\x00" + (rng.randbytes(3 * width) if noise else bytes(rgb) * width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


class ImageServer:
    """Serves `files` (path -> bytes) on 127.0.0.1; a path under `/raw/` gets `files["/raw/"]` (the stand-in for
    raw.githubusercontent.com); any other path is a 404, `/redirect` a 302."""

    def __init__(self, files: dict[str, bytes]) -> None:
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the stdlib calls it by this name
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("location", "/images/red.png")
                    self.end_headers()
                    return
                body = files_.get(self.path) or (files_.get("/raw/") if self.path.startswith("/raw/") else None)
                self.send_response(200 if body is not None else 404)
                self.send_header("content-type", "image/png" if body is not None else "text/plain")
                self.send_header("content-length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @classmethod
    @contextmanager
    def running(cls, files: dict[str, bytes]) -> Iterator[ImageServer]:
        server = cls(files)
        server.thread.start()
        try:
            yield server
        finally:
            server.httpd.shutdown()
            server.httpd.server_close()
