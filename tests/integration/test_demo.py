"""`broadcaster demo` on its embedded defaults: a worker or beat that cannot start, or
stops, is reported at once with its exit code and log; the embedded broker's queues are
created once whatever starts at the same moment; the whole demo runs end to end.

Real processes throughout: a real Celery worker given a bad option, a real worker and
beat killed mid-run, real processes racing to create a fresh SQLite broker's queues.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from broadcaster.cli.main import main
from broadcaster.dev.demo import run_demo
from broadcaster.dev.stack import TAIL_LINES, StackError
from broadcaster.settings import Settings, load_settings
from tasks.app import make_app
from tasks.broker import declare_queues
from tasks.commands import QUEUES, worker_command
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


def _settings(directory: Path) -> Settings:
    return load_settings({"WSP_DATA_DIR": str(directory)})


def _processes_of(directory: Path, role: str) -> list[int]:
    """Our processes (by their environment) running Celery's `role` for `directory`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"WSP_DATA_DIR={directory}".encode() in environ and role.encode() in argv:
            found.append(int(entry.name))
    return found


def test_a_worker_that_cannot_start_is_reported_at_once_with_its_log(tmp_path: Path) -> None:
    broken = worker_command(queues=",".join(QUEUES), pool="no-such-pool")
    started = time.monotonic()
    with pytest.raises(StackError) as raised:
        run_demo(settings=_settings(tmp_path), residents=50, worker_command=broken)
    took = time.monotonic() - started
    message = str(raised.value)
    assert message.startswith("the worker exited (exit code 2, after "), message
    assert f"the last {TAIL_LINES} lines of {tmp_path / 'demo-worker.log'}:" in message
    assert "Invalid value for '-P' / '--pool': 'no-such-pool'" in message
    assert took < 20, f"reported after {took:.1f} s"


def test_a_worker_command_that_is_not_there_is_reported_at_once(tmp_path: Path) -> None:
    missing = [str(tmp_path / "no-such-celery"), "worker"]
    with pytest.raises(StackError, match=r"^the worker could not be started \(.*no-such-celery\)"):
        run_demo(settings=_settings(tmp_path), residents=50, worker_command=missing)


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_worker_or_beat_that_dies_mid_run_is_reported_at_once(tmp_path: Path, role: str) -> None:
    killed: list[float] = []

    def kill_once_running() -> None:
        log = tmp_path / "demo-worker.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and b" ready." in log.read_bytes():
                break
            time.sleep(0.05)
        time.sleep(1)
        for pid in _processes_of(tmp_path, role):
            os.kill(pid, signal.SIGKILL)
            killed.append(time.monotonic())

    killer = threading.Thread(target=kill_once_running, daemon=True)
    killer.start()
    with pytest.raises(StackError) as raised:
        # Many residents: the alert is still going out when the process dies.
        run_demo(settings=_settings(tmp_path), residents=20_000, timeout=600)
    reported = time.monotonic()
    killer.join(timeout=5)
    assert killed, f"no {role} process found to kill"
    message = str(raised.value)
    assert message.startswith(f"the {role} exited (exit code -9, after "), message
    assert f"the last {TAIL_LINES} lines of {tmp_path / f'demo-{role}.log'}:" in message
    assert reported - killed[0] < 15, f"reported {reported - killed[0]:.1f} s after the kill"


def test_a_beat_that_never_sweeps_ends_the_demo_after_the_stall_bound(tmp_path: Path) -> None:
    """Beat alive but sending nothing (the demo that once hung for 608 s): nothing moves
    on the alert, and the demo gives up after `stall` seconds with both logs."""
    silent = [
        sys.executable,
        "-c",
        "import time; print('beat: Starting...', flush=True); time.sleep(600)",
    ]
    started = time.monotonic()
    with pytest.raises(StackError) as raised:
        run_demo(settings=_settings(tmp_path), residents=50, stall=10, beat_command=silent)
    took = time.monotonic() - started
    message = str(raised.value)
    assert message.startswith("nothing moved on alert 1 for 10 s (status approved, 0 deliveries"), (
        message
    )
    assert f"{tmp_path / 'demo-worker.log'} (worker):" in message
    assert f"{tmp_path / 'demo-beat.log'} (beat):\nbeat: Starting..." in message
    assert took < 60, f"gave up after {took:.1f} s"


# Each racer opens a fresh broker file per round at the same instant as the others and
# does what its role does on start-up: a worker declares every queue it consumes, beat
# publishes its first sweep to `plan`, a declarer runs tasks.broker.declare_queues.
RACER = """
import json, sys, time, traceback
from broadcaster.settings import load_settings
from tasks.app import make_app
from tasks.broker import declare_queues

directory, role, secret = sys.argv[1], sys.argv[2], sys.argv[6]
start, rounds, gap = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
errors = []
for n in range(rounds):
    app = make_app(load_settings({
        "WSP_ENV": "test", "WSP_SECRET_KEY": secret,
        "BROKER_URL": f"sqla+sqlite:///{directory}/broker-{n}.db",
    }))
    time.sleep(max(0.0, start + n * gap - time.time()))
    try:
        if role == "worker":
            with app.connection_for_write() as connection:
                for queue in app.conf.task_queues:
                    queue.bind(connection.default_channel).declare()
        elif role == "beat":
            app.send_task("tasks.jobs.sweep", queue="plan")
        else:
            declare_queues(app)
    except Exception:
        errors.append(f"round {n}: {traceback.format_exc()[-1500:]}")
    app.close()
print(json.dumps(errors))
"""


def test_concurrent_start_ups_create_each_broker_queue_once(tmp_path: Path) -> None:
    rounds, gap = 12, 0.4
    roles = ["worker", "worker", "beat", "beat", "declarer", "declarer"]
    start = time.time() + 6  # after every racer has imported Celery
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACER,
                str(tmp_path),
                role,
                str(start),
                str(rounds),
                str(gap),
                TEST_SECRET,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for role in roles
    ]
    errors = []
    for role, racer in zip(roles, racers, strict=True):
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err.decode()[-2000:]
        errors += [f"{role} {e}" for e in json.loads(out)]
    assert errors == []
    for n in range(rounds):
        with sqlite3.connect(tmp_path / f"broker-{n}.db") as broker:
            names = [name for (name,) in broker.execute("SELECT name FROM kombu_queue")]
            sent = broker.execute("SELECT count(*) FROM kombu_message").fetchone()[0]
        assert sorted(names) == sorted(QUEUES), n
        assert sent == roles.count("beat"), n


def test_declaring_the_queues_again_changes_nothing(tmp_path: Path) -> None:
    app = make_app(
        load_settings(
            {
                "WSP_ENV": "test",
                "WSP_SECRET_KEY": TEST_SECRET,
                "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
            }
        )
    )
    try:
        assert declare_queues(app) == list(QUEUES)
        app.send_task("tasks.jobs.sweep", queue="plan")
        assert declare_queues(app) == list(QUEUES)
    finally:
        app.close()
    with sqlite3.connect(tmp_path / "broker.db") as broker:
        rows = broker.execute("SELECT id, name FROM kombu_queue ORDER BY id").fetchall()
        waiting = broker.execute("SELECT count(*) FROM kombu_message").fetchone()[0]
    assert [name for _, name in rows] == list(QUEUES)
    assert waiting == 1


def test_demo_runs_the_whole_pipeline_and_accounts_for_every_message(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"WSP_DATA_DIR": str(tmp_path)}
    done = runner.invoke(
        main, ["demo", "--subscribers", "800", "--json"], env=env, catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["alert"]["status"] == "done"
    assert report["alert"]["author_id"] != report["alert"]["approver_id"]
    assert set(report["deliveries"]) == {"sms", "push", "email"}
    for channel, by_status in report["deliveries"].items():
        assert set(by_status) <= {"sent", "delivered", "failed", "suppressed"}, channel
        arrived = by_status.get("sent", 0) + by_status.get("delivered", 0)
        assert report["sandbox_accepted"][channel] == arrived > 0
    # The sandbox reported every SMS delivered, through the receipt endpoint and a worker.
    assert report["deliveries"]["sms"] == {"delivered": report["sandbox_accepted"]["sms"]}
    assert report["receipts"]["smsapi"]["applied"] == report["sandbox_accepted"]["sms"]
    assert report["audit"].startswith("intact")
    assert (tmp_path / "demo.db").exists()
    assert (tmp_path / "demo-beat.log").exists()
