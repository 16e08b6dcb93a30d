"""A moto server on 127.0.0.1, for the AWS tests: nothing here can reach real AWS.

The server is a separate process (``moto_server``), so its warnings and threads stay out of the
test process; every client reaches it through ``SWEEPHERD_AWS_ENDPOINT_URL``, which sweepherd
honours for every boto3 client it makes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    """A running ``moto_server`` process."""

    url: str
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, log_path: Path) -> MotoServer:
        port = free_port()
        exe = Path(sys.executable).with_name("moto_server")
        log = log_path.open("wb")
        process = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        log.close()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    return cls(url, process)
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"moto_server exited: {log_path.read_text()}") from None
                time.sleep(0.1)
        process.kill()
        raise RuntimeError("moto_server did not start in 30 s")

    def reset(self) -> None:
        """Forget every resource (between tests)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
