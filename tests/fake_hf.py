"""A fake Hugging Face Hub on 127.0.0.1: just the endpoints huggingface_hub calls for config.json
and safetensors headers (huggingface_hub 1.x, file_download.get_hf_file_metadata / hf_hub_download,
hf_api.HfApi.file_exists / parse_safetensors_file_metadata):

- HEAD /{org}/{name}/resolve/{revision}/{file}: 200 with X-Repo-Commit, ETag and Content-Length
  (get_hf_file_metadata reads them), or 404 with X-Error-Code EntryNotFound / RepoNotFound, or
  401 with X-Error-Code GatedRepo when the repo is gated and no valid bearer token came
  (utils/_http.py hf_raise_for_status maps these codes to its exceptions).
- GET of the same path: the file, or with `Range: bytes=a-b` a 206 slice (the safetensors
  header read asks for bytes=0-100000).

Every request is recorded (method, path, range, authorization) so tests can prove that no weights
were downloaded and that HF_TOKEN was sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def safetensors_file(tensors: Mapping[str, tuple[str, list[int]]], padding: int = 4096) -> bytes:
    """A safetensors file whose header declares `tensors` ({name: (dtype, shape)}).

    The data section is not the declared size (a header reader never looks at it) but a fixed
    `padding`, so a test can tell a header read from a download."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    for offset, (name, (dtype, shape)) in enumerate(tensors.items()):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + 1]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * padding


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    gated_token: str | None = None  # gated: only this bearer token may read
    delay_seconds: float = 0.0  # every request waits this long (a stalled Hub)


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def add(self, repo: str, files: dict[str, bytes | dict[str, Any]], **options: Any) -> None:
        encoded = {name: (json.dumps(body).encode() if isinstance(body, dict) else body)
                   for name, body in files.items()}
        self.repos[repo] = FakeRepo(encoded, **options)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _error(self, status: int, code: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self, body: bool) -> None:
            auth = self.headers.get("Authorization")
            hub.requests.append(Request(self.command, self.path, self.headers.get("Range"), auth))
            match = _RESOLVE.match(self.path.split("?")[0])
            repo = hub.repos.get(match["repo"]) if match else None
            if repo is None or match is None:
                self._error(404, "RepoNotFound")
                return
            time.sleep(repo.delay_seconds)
            if repo.gated_token is not None and auth != f"Bearer {repo.gated_token}":
                self._error(401, "GatedRepo")
                return
            content = repo.files.get(match["file"])
            if content is None:
                self._error(404, "EntryNotFound")
                return
            status, payload = 200, content
            ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if ranged and body:
                start = int(ranged[1])
                end = int(ranged[2]) if ranged[2] else len(content) - 1
                status, payload = 206, content[start:end + 1]
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha1(content).hexdigest()}"')
            self.send_header("Content-Length", str(len(payload) if body else len(content)))
            self.end_headers()
            if body:
                self.wfile.write(payload)

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    """Run `hub` on an ephemeral 127.0.0.1 port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
