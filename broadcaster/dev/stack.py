"""The whole system running on loopback: what `broadcaster demo` runs its pipeline on, and
what the browser tests (tests/e2e) drive a browser against.

The sandbox providers run in a thread, the HTTP app under uvicorn in another, one Celery
worker (every queue) and beat in processes of their own. The broker's queues are declared
before either starts, so that they do not race to create them. Both processes are
watched: one that exits, while starting or later, is reported at once with its exit code
and the end of its log (`Stack.check`), never after a long wait. All of it is configured
as production is, from environment variables: the API and the worker get the same ones,
so they share the database and the broker, and SMSAPI (the sandbox) sends its delivery
reports to the API's public URL, with the callback secret in it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.db import migrate as schema
from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.http.app import create_app, server_config, worker_handoffs
from broadcaster.settings import Settings, load_settings
from channels.sandbox.server import Endpoints, SandboxServer
from tasks.broker import declare_queues
from tasks.commands import stack_commands

HOST = "127.0.0.1"
STARTUP_SECONDS = 60
STOP_SECONDS = 30
# What Celery logs once the worker consumes (`celery@host ready.`), and beat once it ticks.
WORKER_READY = b" ready."
BEAT_READY = b"beat: Starting..."
# How much of a process's log a failure message quotes.
TAIL_LINES = 20


class StackError(RuntimeError):
    """A part of the stack did not come up or stopped; the message says which, with its
    exit code and the end of its log."""


@dataclass
class Watched:
    """A process of the stack (the worker, beat) and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last `lines` lines of the log."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])

    def failure(self, what: str) -> StackError:
        """`what` went wrong with this process, with its exit code and log tail."""
        code = self.process.poll()
        exit_code = "still running" if code is None else f"exit code {code}"
        return StackError(
            f"the {self.name} {what} ({exit_code}, after {time.monotonic() - self.started:.1f} s);"
            f" the last {TAIL_LINES} lines of {self.log}:\n{self.tail()}"
        )

    def check(self) -> None:
        """Raise StackError at once if the process has exited."""
        if self.process.poll() is not None:
            raise self.failure("exited")


@dataclass(frozen=True)
class Stack:
    """A running stack: where the API listens, the settings everything runs with, the
    database, the sandbox that records what the providers were sent, and the worker and
    beat processes."""

    settings: Settings
    base_url: str
    sessions: sessionmaker[Session]
    sandbox: SandboxServer
    endpoints: Endpoints
    worker: subprocess.Popen[bytes]
    worker_log: Path
    processes: tuple[Watched, ...] = ()

    def worker_output(self, last: int = 4000) -> str:
        """The end of the worker's log, for a failure message."""
        return self.worker_log.read_text(errors="replace")[-last:]

    def check(self) -> None:
        """Raise StackError, naming the process with its exit code and log tail, if the
        worker or beat has exited."""
        for watched in self.processes:
            watched.check()

    def logs(self) -> str:
        """The end of every process's log, for a message about something that stalled."""
        return "\n".join(
            f"the last {TAIL_LINES} lines of {watched.log} ({watched.name}):\n{watched.tail()}"
            for watched in self.processes
        )


def bound_socket(host: str = HOST) -> socket.socket:
    """A listening socket on a port the system picked: held from the start, so that no
    other program can take the port between choosing it and serving on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(2048)
    return sock


@contextlib.contextmanager
def serve_api(app: FastAPI, sock: socket.socket) -> Iterator[str]:
    """Serve `app` on the listening socket `sock` in a thread; yields its base URL."""
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(server_config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, args=([sock],), name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if not server.started:
            raise StackError(f"the API did not start on {host}:{port}")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def run_process(
    name: str, command: Sequence[str], environment: Mapping[str, str], *, log: Path
) -> Iterator[Watched]:
    """`command` in a process group of its own, its output in `log`; stopped with SIGTERM
    (a warm shutdown for a worker), killed if it has not stopped within 30 s."""
    output = log.open("wb")
    try:
        process = subprocess.Popen(  # noqa: S603 - our own worker and beat
            list(command),
            env=dict(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
            # A group of its own: whatever is left of it (a pool's children) can be killed.
            start_new_session=True,
        )
    except OSError as error:
        output.close()
        raise StackError(f"the {name} could not be started ({command[0]}): {error}") from None
    try:
        yield Watched(name, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output.close()


def wait_until_ready(
    ready: Sequence[tuple[Watched, bytes]], timeout: float = STARTUP_SECONDS
) -> None:
    """Until each process has logged its ready line; one that exits meanwhile is reported
    at once, and so is one not ready within `timeout`."""
    deadline = time.monotonic() + timeout
    pending = list(ready)
    while True:
        for watched, _ in ready:
            watched.check()
        pending = [(w, line) for w, line in pending if line not in w.log.read_bytes()]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise pending[0][0].failure(f"was not ready within {timeout:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def running_stack(
    *,
    directory: Path,
    variables: Mapping[str, str],
    prepare: Callable[[Session], object],
    name: str = "stack",
    worker_command: Sequence[str] | None = None,
    beat_command: Sequence[str] | None = None,
) -> Iterator[Stack]:
    """Start everything, with the process environment plus `variables` (DATABASE_URL,
    BROKER_URL, WSP_...), and stop it all on leaving.

    Files go under `directory` (the data folder: the sandbox's certificates, the logs
    `<name>-worker.log` and `<name>-beat.log`, beat's schedule `<name>-beat`). The schema
    is migrated and `prepare` fills the database (in one transaction) before the API and
    the worker start; the broker's queues are declared before the worker and beat start.
    `worker_command` and `beat_command` replace the usual command lines
    (`tasks.commands.stack_commands`). A worker or beat that exits before it is ready,
    or is not ready within a minute, raises StackError with its log's tail.
    """
    from tasks.app import make_app

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    default_worker, default_beat = stack_commands(directory / f"{name}-beat")
    with contextlib.ExitStack() as cleanup:
        sandbox = SandboxServer(directory=directory / "sandbox")
        endpoints = sandbox.start_in_thread()
        cleanup.callback(sandbox.stop_thread)
        sock = cleanup.enter_context(bound_socket())
        port = sock.getsockname()[1]
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
        declare_queues(celery)
        publish, notify, plan_now = worker_handoffs(celery)
        base_url = cleanup.enter_context(
            serve_api(create_app(settings, publish=publish, notify=notify, plan_now=plan_now), sock)
        )
        worker = cleanup.enter_context(
            run_process(
                "worker",
                worker_command or default_worker,
                environment,
                log=directory / f"{name}-worker.log",
            )
        )
        beat = cleanup.enter_context(
            run_process(
                "beat",
                beat_command or default_beat,
                environment,
                log=directory / f"{name}-beat.log",
            )
        )
        wait_until_ready([(worker, WORKER_READY), (beat, BEAT_READY)])
        yield Stack(
            settings=settings,
            base_url=base_url,
            sessions=sessions,
            sandbox=sandbox,
            endpoints=endpoints,
            worker=worker.process,
            worker_log=worker.log,
            processes=(worker, beat),
        )
