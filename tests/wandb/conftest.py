"""Fixtures for the wandb tests: real offline wandb runs in child processes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

Starter = Callable[..., subprocess.Popen[str]]


def wandb_env(root: Path, **extra: str) -> dict[str, str]:
    """An environment for an offline wandb run that writes only under ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(root),
            "WANDB_CONFIG_DIR": str(root / ".config"),
            "WANDB_CACHE_DIR": str(root / ".cache"),
            "WANDB_DATA_DIR": str(root / ".data"),
            "WANDB_SILENT": "true",
            "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL": "1",
            # Offline runs never talk to a server; should one try, it gets a refused port here.
            "WANDB_BASE_URL": "http://127.0.0.1:9",
        }
    )
    env.update(extra)
    return env


def _start(
    started: list[subprocess.Popen[str]], root: Path, code: str, **env: str
) -> subprocess.Popen[str]:
    root.mkdir(parents=True, exist_ok=True)
    script = root / f"script{len(started)}.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=wandb_env(root, **env),
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(proc)
    return proc


def _reap(started: list[subprocess.Popen[str]]) -> None:
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def wandb_starter() -> Iterator[Starter]:
    """``start(root, code, **env)``: run ``code`` (a script using wandb) offline under ``root``.

    Keyword arguments become environment variables. Children still running when the module's
    tests end are killed.
    """
    pytest.importorskip("wandb")
    started: list[subprocess.Popen[str]] = []
    yield lambda root, code, **env: _start(started, root, code, **env)
    _reap(started)


@pytest.fixture
def wandb_script(tmp_path: Path) -> Iterator[Starter]:
    """``start(code, **env)``: run ``code`` offline with ``WANDB_DIR=tmp_path``; the Popen."""
    pytest.importorskip("wandb")
    started: list[subprocess.Popen[str]] = []
    yield lambda code, **env: _start(started, tmp_path, code, **env)
    _reap(started)


class FakeWandbServer:
    """A stand-in for the W&B server at the HTTP boundary, on 127.0.0.1: what ``wandb sync``
    sends is recorded, and it gets the few answers it needs (UpsertBucket, CreateRunFiles,
    file_stream, file uploads). ``refuse_runs`` makes UpsertBucket fail as a server would
    for an unknown sweep (404 with a GraphQL error).
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.refuse_runs = False
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                return data

            def _reply(self, status: int, doc: object) -> None:
                out = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self) -> None:
                body = self._body()
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                op = doc.get("operationName") if isinstance(doc, dict) else None
                var = (doc.get("variables") or {}) if isinstance(doc, dict) else {}
                server._record("POST", self.path, op, var, doc)
                if op == "UpsertBucket" and server.refuse_runs:
                    self._reply(404, {"errors": [{"message": "sweep zzz not found"}]})
                elif op == "UpsertBucket":
                    project = {
                        "id": "p",
                        "name": var["project"],
                        "entity": {"id": "e", "name": var["entity"]},
                    }
                    bucket = {
                        "id": "b-" + var["name"],
                        "name": var["name"],
                        "displayName": var["name"],
                        "description": None,
                        "config": var.get("config"),
                        "sweepName": None,
                        "project": project,
                        "historyLineCount": 0,
                    }
                    self._reply(
                        200, {"data": {"upsertBucket": {"bucket": bucket, "inserted": True}}}
                    )
                elif op == "CreateRunFiles":
                    base = f"http://127.0.0.1:{server.port}/upload/{var['run']}"
                    files = [{"name": f, "uploadUrl": f"{base}/{f}"} for f in var["files"]]
                    self._reply(
                        200,
                        {
                            "data": {
                                "createRunFiles": {
                                    "runID": "b",
                                    "uploadHeaders": [],
                                    "files": files,
                                }
                            }
                        },
                    )
                elif self.path.endswith("/file_stream"):
                    self._reply(200, {"exitcode": None, "limits": {}})
                else:
                    self._reply(200, {"data": {}})

            def do_PUT(self) -> None:
                server._record("PUT", self.path, None, {}, self._body())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _record(
        self, method: str, path: str, op: str | None, var: dict[str, Any], body: Any
    ) -> None:
        with self._lock:
            self.requests.append(
                {"method": method, "path": path, "op": op, "variables": var, "body": body}
            )

    def upserts(self) -> list[dict[str, Any]]:
        """The variables of every UpsertBucket (create/update run) call."""
        return [r["variables"] for r in self.requests if r["op"] == "UpsertBucket"]

    def history(self, run_id: str) -> list[dict[str, Any]]:
        """Every history row sent for ``run_id`` through file_stream, in order."""
        rows: list[dict[str, Any]] = []
        for r in self.requests:
            if r["path"].endswith(f"/{run_id}/file_stream") and isinstance(r["body"], dict):
                part = r["body"].get("files", {}).get("wandb-history.jsonl")
                if part:
                    rows += [json.loads(line) for line in part["content"]]
        return rows

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def fake_wandb_server() -> Iterator[FakeWandbServer]:
    """A :class:`FakeWandbServer` for the test; the only stand-in in these tests."""
    server = FakeWandbServer()
    yield server
    server.close()
