"""The whole system running on loopback: what `broadcaster demo` runs its pipeline on, and
what the browser tests (tests/e2e) drive a browser against.

The sandbox providers run in a thread, the HTTP app under uvicorn in another, and one
Celery worker (every queue, with beat) in a process of its own. All of it is configured
as production is, from environment variables: the API and the worker get the same ones,
so they share the database and the broker, and SMSAPI (the sandbox) sends its delivery
reports to the API's public URL, with the callback secret in it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from broadcaster import schema
from broadcaster.api.app import create_app, server_config, worker_handoffs
from broadcaster.db import make_engine, make_sessionmaker
from broadcaster.settings import Settings, load_settings
from channels.sandbox.server import Endpoints, SandboxServer, free_port
from tasks.commands import all_in_one_worker

HOST = "127.0.0.1"
STARTUP_SECONDS = 60
# What Celery logs once the worker consumes (`celery@host ready.`).
WORKER_READY = b" ready."


class StackError(RuntimeError):
    """A part of the stack did not come up; the message says which, with its log."""


@dataclass(frozen=True)
class Stack:
    """A running stack: where the API listens, the settings everything runs with, the
    database, and the sandbox that records what the providers were sent."""

    settings: Settings
    base_url: str
    sessions: sessionmaker[Session]
    sandbox: SandboxServer
    endpoints: Endpoints
    worker: subprocess.Popen[bytes]
    worker_log: Path

    def worker_output(self, last: int = 4000) -> str:
        """The end of the worker's log, for a failure message."""
        return self.worker_log.read_text(errors="replace")[-last:]


@contextlib.contextmanager
def serve_api(app: FastAPI, port: int) -> Iterator[str]:
    """Serve `app` on loopback `port` in a thread; yields its base URL."""
    server = uvicorn.Server(server_config(app, host=HOST, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if not server.started:
            raise StackError(f"the API did not start on {HOST}:{port}")
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def run_worker(
    environment: Mapping[str, str], *, log: Path, schedule: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """One worker for every queue, with beat, until it has said it is ready; stopped
    with SIGTERM (a warm shutdown), killed if it has not stopped within 30 s."""
    output = log.open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own worker
        all_in_one_worker(schedule),
        env=dict(environment),
        stdout=output,
        stderr=subprocess.STDOUT,
        # A group of its own: whatever is left of it (beat runs in a child) can be killed.
        start_new_session=True,
    )
    try:
        _wait_until_ready(process, log)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output.close()


def _wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if WORKER_READY in log.read_bytes():
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:]
    raise StackError(f"the worker did not start (exit code {process.poll()}):\n{tail}")


@contextlib.contextmanager
def running_stack(
    *,
    directory: Path,
    variables: Mapping[str, str],
    prepare: Callable[[Session], object],
    name: str = "stack",
) -> Iterator[Stack]:
    """Start everything, with the process environment plus `variables` (DATABASE_URL,
    BROKER_URL, WSP_...), and stop it all on leaving.

    Files go under `directory` (the data folder: the sandbox's certificates, the worker's
    log `<name>-worker.log` and beat schedule `<name>-beat`). The schema is migrated and
    `prepare` fills the database (in one transaction) before the API and the worker start.
    """
    from tasks.app import make_app

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        sandbox = SandboxServer(directory=directory / "sandbox")
        endpoints = sandbox.start_in_thread()
        cleanup.callback(sandbox.stop_thread)
        port = free_port(HOST)
        environment = {
            **os.environ,
            **endpoints.environment(),
            "WSP_DATA_DIR": str(directory),
            "WSP_PUBLIC_BASE_URL": f"http://{HOST}:{port}",
            "WSP_SMSAPI_CALLBACK_SECRET": secrets.token_urlsafe(24),
            "WSP_SWEEP_SECONDS": "1",
            **variables,
        }
        settings = load_settings(environment)
        engine = make_engine(settings.database_url)
        cleanup.callback(engine.dispose)
        sessions = make_sessionmaker(engine, secret_key=settings.secret_key)
        schema.upgrade(engine, secret_key=settings.secret_key)
        with sessions.begin() as session:
            prepare(session)
        celery = make_app(settings)
        cleanup.callback(celery.close)
        publish, notify = worker_handoffs(celery)
        base_url = cleanup.enter_context(
            serve_api(create_app(settings, publish=publish, notify=notify), port)
        )
        log = directory / f"{name}-worker.log"
        worker = cleanup.enter_context(
            run_worker(environment, log=log, schedule=directory / f"{name}-beat")
        )
        yield Stack(
            settings=settings,
            base_url=base_url,
            sessions=sessions,
            sandbox=sandbox,
            endpoints=endpoints,
            worker=worker,
            worker_log=log,
        )
