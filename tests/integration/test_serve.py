"""`broadcaster serve` as an administrator runs it: a real uvicorn process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from channels.sandbox.server import free_port
from tests.conftest import TEST_SECRET


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_access_log_never_shows_a_residents_link_or_a_callback_secret(
    tmp_path: Path,
) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "WSP_ENV": "test",
        "WSP_DATA_DIR": str(tmp_path),
        "WSP_SECRET_KEY": TEST_SECRET,
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "broadcaster"), "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if _get(f"{base}/healthz") == 200:
                    break
            except OSError:
                time.sleep(0.1)
        secret_paths = [
            "/manage/17.1900000000.c2VjcmV0LW1hbmFnZQ",
            "/my/17.1900000000.c2VjcmV0LW1hbmFnZQ/export.json",
            "/u/23.dW5zdWJzY3JpYmU",
            "/residents/confirm/5.123456.1900000000.Y29uZmlybQ",
            "/callbacks/smsapi/reports/secret-in-the-callback-url",
        ]
        statuses = [_get(base + path) for path in secret_paths]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert 200 not in statuses
    assert '"GET /healthz HTTP/1.1" 200' in output
    for path in secret_paths:
        assert path not in output
        assert path.split(".")[0].rsplit("/", 1)[0] + "/***" in output
