"""A file server on 127.0.0.1 for download tests: honours ``Range``, can stop halfway through a file or
answer with an HTML page, records every request, and serves Hugging Face's ``resolve`` URLs with the
headers ``huggingface_hub`` reads. Stops when its ``with`` block ends."""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Files:
    """``content`` by URL path; ``cut``: path -> bytes sent before dropping the connection (once);
    ``html``: paths answered with an HTML page; ``gated``: path prefixes answered 403 as the Hub does
    for a gated repo; ``requests``: (method, path, Range header)."""

    content: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    html: set[str] = field(default_factory=set)
    gated: set[str] = field(default_factory=set)  # path prefixes answered as a gated Hugging Face repo
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


def _handler(files: Files):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?")[0]
            files.requests.append((self.command, path, self.headers.get("Range")))
            if any(path.startswith(g) for g in files.gated):
                self.send_response(403)
                self.send_header("X-Error-Code", "GatedRepo")
                self.send_header("X-Error-Message", "Access to this model is restricted: you must accept its licence.")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path in files.html:
                page = b"<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                if body:
                    self.wfile.write(page)
                return
            data = files.content.get(path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if (rng := self.headers.get("Range")) and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Repo-Commit", HF_COMMIT)
            self.end_headers()
            if not body:
                return
            if path in files.cut and start == 0:
                self.wfile.write(data[: files.cut.pop(path)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

    return Handler


@contextmanager
def serving(files: Files):
    """``http://127.0.0.1:PORT`` serving ``files`` until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
