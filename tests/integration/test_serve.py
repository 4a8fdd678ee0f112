"""`broadcaster serve` as an administrator runs it: a real uvicorn process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from channels.sandbox.server import free_port
from tests.conftest import TEST_SECRET


def _get(url: str | urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def _post_json(url: str, body: object, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    return _get(request)


@dataclass
class Served:
    base: str
    # What the server printed, once it has stopped.
    output: str = ""


@contextmanager
def serve(tmp_path: Path, **variables: str) -> Iterator[Served]:
    """`broadcaster serve` on a free loopback port, with these settings added."""
    port = free_port()
    environment = {
        **os.environ,
        "WSP_ENV": "test",
        "WSP_DATA_DIR": str(tmp_path),
        "WSP_SECRET_KEY": TEST_SECRET,
        **variables,
    }
    command = str(Path(sys.executable).parent / "broadcaster")
    # As it is deployed: the schema first (the residents' routes hold what they hand over).
    subprocess.run([command, "migrate"], env=environment, check=True, capture_output=True)
    server = subprocess.Popen(
        [command, "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if _get(f"{served.base}/healthz") == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield served
    finally:
        server.terminate()
        served.output, _ = server.communicate(timeout=30)


def test_the_access_log_never_shows_a_residents_link_or_a_callback_secret(
    tmp_path: Path,
) -> None:
    secret_paths = [
        "/manage/17.1900000000.c2VjcmV0LW1hbmFnZQ",
        "/my/17.1900000000.c2VjcmV0LW1hbmFnZQ/export.json",
        "/u/23.dW5zdWJzY3JpYmU",
        "/residents/confirm/5.123456.1900000000.Y29uZmlybQ",
        "/callbacks/smsapi/reports/secret-in-the-callback-url",
    ]
    with serve(tmp_path) as served:
        statuses = [_get(served.base + path) for path in secret_paths]
    assert 200 not in statuses
    assert '"GET /healthz HTTP/1.1" 200' in served.output
    for path in secret_paths:
        assert path not in served.output
        assert path.split(".")[0].rsplit("/", 1)[0] + "/***" in served.output


def _ask_for_links(served: Served, forwarded_for: list[str]) -> list[int]:
    """One manage link asked for each X-Forwarded-For value, each for another number."""
    return [
        _post_json(
            f"{served.base}/residents/links",
            {"channel": "sms", "address": f"60200{n:04d}"},
            {"X-Forwarded-For": value},
        )
        for n, value in enumerate(forwarded_for)
    ]


def test_without_proxies_of_ours_a_client_rotating_x_forwarded_for_is_one_client(
    tmp_path: Path,
) -> None:
    limit = {"WSP_VERIFICATION_MESSAGES_PER_IP_PER_HOUR": "3", "WSP_FORWARDED_FOR_HOPS": "0"}
    with serve(tmp_path, **limit) as served:
        statuses = _ask_for_links(served, [f"203.0.113.{n}" for n in range(1, 7)])
    assert statuses == [202, 202, 202, 429, 429, 429], served.output[-2000:]


def test_behind_one_proxy_of_ours_the_entry_it_appended_is_the_client(tmp_path: Path) -> None:
    limit = {"WSP_VERIFICATION_MESSAGES_PER_IP_PER_HOUR": "2", "WSP_FORWARDED_FOR_HOPS": "1"}
    with serve(tmp_path, **limit) as served:
        # What the client wrote before our proxy's entry changes nothing ...
        spoofed = [f"198.51.100.{n}, 203.0.113.1" for n in range(1, 5)]
        # ... and another entry of our proxy's is another client.
        statuses = _ask_for_links(served, [*spoofed, "203.0.113.2"])
    assert statuses == [202, 202, 429, 429, 202], served.output[-2000:]
