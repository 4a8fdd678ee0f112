"""Run the three sandbox providers on loopback, with a small control API.

One aiohttp server carries SMSAPI's `/sms.do` and the control API (`/_sandbox/...`); FCM
runs under hypercorn on a TLS port (HTTP/2) and a plain port; the SMTP sink is aiosmtpd on
its own port. A fresh certificate authority (trustme) signs the TLS certificate; its CA
file is what clients are told to trust. The generated service-account file for FCM (its
token endpoint is the sandbox) is written next to it.

Control API (JSON): GET /_sandbox/{smsapi|fcm|smtp}/counts, GET .../messages?limit=N,
POST .../faults with a Faults object, POST .../reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config

from channels.sandbox.common import Recorder
from channels.sandbox.fcm import FcmSandbox
from channels.sandbox.smsapi import SmsApiSandbox
from channels.sandbox.smtp import SmtpSink

SMSAPI_TOKEN = "sandbox-smsapi-token"  # noqa: S105 - the sandbox's own, not a secret
FCM_PROJECT = "wsp-sandbox"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def service_account(token_uri: str, project_id: str) -> dict[str, str]:
    """A service-account document with a fresh RSA key whose token endpoint is `token_uri`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "sandbox-key-1",
        "private_key": pem,
        "client_email": f"broadcaster@{project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where everything listens, and the settings that point the system at it."""

    host: str
    smsapi_url: str
    control_url: str
    fcm_url: str
    fcm_plain_url: str
    smtp_port: int
    # FCM over TLS and HTTP/1.1 served by aiohttp: cheaper per request, for load tests.
    fcm_http1_url: str
    ca_file: str
    fcm_credentials_file: str

    def environment(self) -> dict[str, str]:
        return {
            "WSP_SMSAPI_URL": self.smsapi_url,
            "WSP_SMSAPI_TOKEN": SMSAPI_TOKEN,
            "WSP_FCM_ENDPOINT": self.fcm_url,
            "WSP_FCM_PROJECT_ID": FCM_PROJECT,
            "WSP_FCM_CREDENTIALS_FILE": self.fcm_credentials_file,
            "WSP_FCM_CA_FILE": self.ca_file,
            "WSP_SMTP_HOST": self.host,
            "WSP_SMTP_PORT": str(self.smtp_port),
            "WSP_SMTP_SECURITY": "starttls",
            "WSP_SMTP_CA_FILE": self.ca_file,
        }


def command_line(env_file: Path) -> list[str]:
    """`broadcaster sandbox` in a process of its own, every port picked free, the settings
    that point at it written to `env_file`."""
    ports = ("--smsapi-port", "--fcm-port", "--fcm-plain-port", "--fcm-http1-port", "--smtp-port")
    argv = [sys.executable, "-m", "broadcaster", "sandbox"]
    for option in ports:
        argv += [option, "0"]
    return [*argv, "--env-file", str(env_file)]


class SandboxServer:
    def __init__(
        self,
        *,
        directory: Path,
        host: str = "127.0.0.1",
        smsapi_port: int = 0,
        fcm_port: int = 0,
        fcm_plain_port: int = 0,
        fcm_http1_port: int = 0,
        smtp_port: int = 0,
        receipt_url: str | None = None,
        smtp_idle_timeout: float = 300,
    ) -> None:
        self.directory = directory.resolve()
        self.host = host
        self.ports = {
            "smsapi": smsapi_port,
            "fcm": fcm_port,
            "fcm_plain": fcm_plain_port,
            "fcm_http1": fcm_http1_port,
            "smtp": smtp_port,
        }
        self.smsapi = SmsApiSandbox(token=SMSAPI_TOKEN, receipt_url=receipt_url)
        self.fcm = FcmSandbox(project_id=FCM_PROJECT)
        self.smtp_idle_timeout = smtp_idle_timeout
        self.smtp: SmtpSink | None = None
        self.endpoints: Endpoints | None = None
        self._runner: web.AppRunner | None = None
        self._fcm_runner: web.AppRunner | None = None
        self._smtp_server: asyncio.Server | None = None
        self._fcm_task: asyncio.Task[None] | None = None
        self._fcm_stop = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def providers(self) -> dict[str, Any]:
        assert self.smtp is not None
        return {"smsapi": self.smsapi, "fcm": self.fcm, "smtp": self.smtp}

    def recorder(self, provider: str) -> Recorder:
        recorder: Recorder = self.providers()[provider].recorder
        return recorder

    async def start(self) -> Endpoints:
        self.directory.mkdir(parents=True, exist_ok=True)
        authority = trustme.CA()
        leaf = authority.issue_cert(self.host, "localhost")
        ca_file = self.directory / "sandbox-ca.pem"
        leaf_file = self.directory / "sandbox-leaf.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        leaf.private_key_and_cert_chain_pem.write_to_path(str(leaf_file))
        ports = {name: port or free_port(self.host) for name, port in self.ports.items()}

        smtp_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(smtp_context)
        self.smtp = SmtpSink(tls_context=smtp_context, idle_timeout=self.smtp_idle_timeout)
        loop = asyncio.get_running_loop()
        self._smtp_server = await loop.create_server(self.smtp.protocol, self.host, ports["smtp"])

        app = web.Application()
        self.smsapi.routes(app)
        app.router.add_get("/_sandbox/{provider}/counts", self._counts)
        app.router.add_get("/_sandbox/{provider}/messages", self._messages)
        app.router.add_get("/_sandbox/{provider}/requests", self._requests)
        app.router.add_post("/_sandbox/{provider}/faults", self._faults)
        app.router.add_post("/_sandbox/{provider}/reset", self._reset)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, ports["smsapi"]).start()

        fcm_app = web.Application()
        fcm_app.router.add_post("/{path:.*}", self.fcm.aiohttp_handler)
        fcm_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(fcm_context)
        self._fcm_runner = web.AppRunner(fcm_app, access_log=None)
        await self._fcm_runner.setup()
        await web.TCPSite(
            self._fcm_runner, self.host, ports["fcm_http1"], ssl_context=fcm_context
        ).start()

        config = Config()
        config.bind = [f"{self.host}:{ports['fcm']}"]
        config.insecure_bind = [f"{self.host}:{ports['fcm_plain']}"]
        config.certfile = config.keyfile = str(leaf_file)
        config.alpn_protocols = ["h2", "http/1.1"]
        config.accesslog = None
        config.errorlog = None
        config.keep_alive_timeout = 75
        # Hypercorn closes a connection after 1,000 requests by default; FCM keeps them.
        config.keep_alive_max_requests = 10**9
        self._fcm_stop = asyncio.Event()
        self._fcm_task = asyncio.create_task(
            serve(self.fcm, config, shutdown_trigger=self._fcm_stop.wait)  # type: ignore[arg-type]
        )
        plain = f"http://{self.host}:{ports['fcm_plain']}"
        await _wait_for_port(self.host, ports["fcm"])
        await _wait_for_port(self.host, ports["fcm_plain"])

        credentials_file = self.directory / "sandbox-fcm-service-account.json"
        credentials_file.write_text(json.dumps(service_account(f"{plain}/token", FCM_PROJECT)))
        self.endpoints = Endpoints(
            host=self.host,
            smsapi_url=f"http://{self.host}:{ports['smsapi']}/",
            control_url=f"http://{self.host}:{ports['smsapi']}/_sandbox",
            fcm_url=f"https://{self.host}:{ports['fcm']}",
            fcm_plain_url=plain,
            smtp_port=ports["smtp"],
            fcm_http1_url=f"https://{self.host}:{ports['fcm_http1']}",
            ca_file=str(ca_file),
            fcm_credentials_file=str(credentials_file),
        )
        return self.endpoints

    async def stop(self) -> None:
        self._fcm_stop.set()
        if self._fcm_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._fcm_task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._fcm_runner is not None:
            await self._fcm_runner.cleanup()
        if self._smtp_server is not None:
            self._smtp_server.close()
            await self._smtp_server.wait_closed()
        if self.smtp is not None:
            self.smtp.abort_connections()
        await asyncio.sleep(0.05)  # let aborted transports finish in this loop

    # -- control API -----------------------------------------------------------------

    def _provider(self, request: web.Request) -> Any:
        name = request.match_info["provider"]
        if name not in {"smsapi", "fcm", "smtp"}:
            raise web.HTTPNotFound(text=f"no sandbox provider {name!r}")
        return self.providers()[name]

    async def _counts(self, request: web.Request) -> web.Response:
        return web.json_response(self._provider(request).counts())

    async def _messages(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        return web.json_response(self._provider(request).recorder.messages(limit))

    async def _requests(self, request: web.Request) -> web.Response:
        return web.json_response(self._provider(request).recorder.requests_log())

    async def _faults(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        try:
            provider.recorder.faults.update(await request.json())
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=422)
        return web.json_response(provider.recorder.faults.as_dict())

    async def _reset(self, request: web.Request) -> web.Response:
        self._provider(request).reset()
        return web.json_response({"reset": True})

    # -- in a thread, for tests and the demo ---------------------------------------

    def start_in_thread(self) -> Endpoints:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="sandbox", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if failure:
            raise failure[0]
        assert self.endpoints is not None
        return self.endpoints

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)


async def _wait_for_port(host: str, port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"sandbox port {port} did not open")
