"""Start `broadcaster sandbox` in a process of its own (so it does not share our CPU time
or GIL) and hand back the settings that point at it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from channels.sandbox.server import command_line


@contextmanager
def sandbox_process(directory: Path) -> Iterator[dict[str, str]]:
    env_file = directory / "sandbox.env"
    env_file.unlink(missing_ok=True)
    process = subprocess.Popen(  # noqa: S603 - our own command line
        command_line(env_file),
        env={**os.environ, "WSP_DATA_DIR": str(directory)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the sandbox did not start: {process.stderr.read() if process.stderr else ''}"
                )
            time.sleep(0.1)
        time.sleep(0.2)
        yield dict(
            line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines()
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
