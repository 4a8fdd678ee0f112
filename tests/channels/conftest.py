"""The sandbox providers on loopback, shared by the channel tests and reset between them."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from channels.sandbox.server import Endpoints, SandboxServer


class Sandbox:
    def __init__(self, server: SandboxServer, endpoints: Endpoints) -> None:
        self.server = server
        self.endpoints = endpoints

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.endpoints.control_url}/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="GET" if body is None else "POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def counts(self, provider: str) -> dict[str, Any]:
        return dict(self._call(f"{provider}/counts"))

    def messages(self, provider: str, limit: int = 1000) -> list[dict[str, Any]]:
        return list(self._call(f"{provider}/messages?limit={limit}"))

    def faults(self, provider: str, **faults: Any) -> None:
        self._call(f"{provider}/faults", faults)

    def reset(self) -> None:
        for provider in ("smsapi", "fcm", "smtp"):
            self._call(f"{provider}/reset", {})


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    server = SandboxServer(directory=Path(tmp_path_factory.mktemp("sandbox")), smtp_idle_timeout=2)
    endpoints = server.start_in_thread()
    yield Sandbox(server, endpoints)
    server.stop_thread()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    sandbox_server.reset()
    return sandbox_server
