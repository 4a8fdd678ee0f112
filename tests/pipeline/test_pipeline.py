"""The pipeline end to end with a real worker, Redis and PostgreSQL, when things break."""

from __future__ import annotations

import contextlib
import subprocess
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import select

from broadcaster.alerts import lifecycle
from broadcaster.dev.population import seed_population
from broadcaster.dispatch import planning
from broadcaster.dispatch.models import Delivery, DeliveryStatus
from subscribers.models import Subscriber
from tasks.commands import QUEUES
from tests.conftest import add_resident
from tests.pipeline.conftest import REDIS_START, Stack, wait_until

# They share Redis (one restarts it): `make test` runs them on their own, one by one.
pytestmark = pytest.mark.pipeline


def seed(stack: Stack, residents: int) -> None:
    with stack.db.begin() as session:
        seed_population(session=session, count=residents, seed=17)


def sent_rows(stack: Stack, alert_id: int) -> dict[str, int]:
    with stack.db() as session:
        rows = (
            session.execute(
                select(Delivery.channel).where(
                    Delivery.alert_id == alert_id, Delivery.sent_at.is_not(None)
                )
            )
            .scalars()
            .all()
        )
    counts: dict[str, int] = {}
    for channel in rows:
        counts[channel] = counts.get(channel, 0) + 1
    return counts


def test_a_worker_killed_mid_fan_out_loses_nothing_and_sends_no_sms_twice(stack: Stack) -> None:
    seed(stack, 20000)
    for provider in ("smsapi", "fcm", "smtp"):
        stack.sandbox.faults(provider, latency_ms=40)
    alert_id = stack.alert()
    wait_until(
        lambda: stack.sandbox.counts("smsapi")["accepted"] >= 1000, 120, "the fan-out to start"
    )
    stack.worker.kill()
    before = {p: stack.sandbox.counts(p)["accepted"] for p in ("smsapi", "fcm", "smtp")}
    assert stack.open_count(alert_id) > 0, "the kill came too late to test anything"
    for provider in ("smsapi", "fcm", "smtp"):
        stack.sandbox.faults(provider, latency_ms=0)
    stack.worker.start()
    stack.wait_all_final(alert_id, timeout=240)
    total = stack.total(alert_id)
    rows = stack.rows(alert_id)
    assert sum(rows.values()) == total  # counters agree with the rows
    assert rows.get("sent", 0) + rows.get("delivered", 0) == total  # nothing lost, nothing failed
    sms = stack.sandbox.counts("smsapi")
    assert sms["duplicates"] == 0
    assert sms["accepted"] == sent_rows(stack, alert_id)["sms"]
    # E-mail and push may repeat what was in flight at the kill: one batch at most.
    for provider, channel, batch in (("fcm", "push", 500), ("smtp", "email", 500)):
        counts = stack.sandbox.counts(provider)
        assert counts["accepted"] - counts["duplicates"] == sent_rows(stack, alert_id)[channel]
        assert counts["duplicates"] <= batch
    assert before["smsapi"] < sms["accepted"]
    wait_until(lambda: stack.status(alert_id) == "done", 30, "the alert to be done")


def test_the_same_batch_delivered_twice_sends_once(stack: Stack) -> None:
    from celery import Celery
    from kombu.entity import Exchange, Queue

    seed(stack, 1500)
    stack.worker.stop()  # plan by hand: nothing else may publish this batch
    alert_id = stack.alert(channels=["email"])
    plan = planning.plan_alert(sessions=stack.db, alert_id=alert_id, batch_size=200)
    assert plan is not None and plan.due
    first = plan.due[0]
    publisher = Celery("publisher", broker=stack.settings.broker_url)
    email = Queue("email", Exchange("email"), routing_key="email")
    for _ in range(2):
        publisher.send_task(
            "tasks.jobs.send_batch", args=[first.alert_id, first.batch_no], queue=email
        )
    stack.worker.start()
    stack.wait_all_final(alert_id)
    counts = stack.sandbox.counts("smtp")
    assert counts["duplicates"] == 0
    assert counts["accepted"] == stack.total(alert_id)


def test_provider_errors_and_throttling_end_every_delivery(stack: Stack) -> None:
    seed(stack, 3000)
    for provider in ("smsapi", "fcm", "smtp"):
        stack.sandbox.faults(provider, error_rate=0.2, throttle_rate=0.1, retry_after=1)
    # SMS goes in few, large requests (four for 3,000 numbers): at any rate, all four may
    # pass untouched, so the first is throttled for sure.
    stack.sandbox.faults(
        "smsapi", error_rate=0.2, throttle_rate=0.3, throttle_next=1, retry_after=1
    )
    alert_id = stack.alert()
    stack.wait_all_final(alert_id, timeout=240)
    rows = stack.rows(alert_id)
    assert set(rows) <= {"sent", "delivered", "failed"}
    assert rows.get("sent", 0) + rows.get("delivered", 0) > 0.95 * sum(rows.values())
    # Retry-After holds for the whole channel: after a 429, SMSAPI hears nothing for 1 s.
    log = sorted(stack.sandbox.server.recorder("smsapi").requests_log())
    throttles = [t for t, what in log if what == "throttle"]
    assert throttles, f"no throttling happened: {stack.sandbox.counts('smsapi')}, {log[:5]}"
    for moment in throttles:
        later = [t for t, _ in log if t > moment]
        if later:
            assert later[0] - moment >= 0.9, f"a request came {later[0] - moment:.2f} s after a 429"
    assert stack.sandbox.counts("smsapi")["duplicates"] == 0


def test_a_redis_restart_loses_nothing(stack: Stack) -> None:
    seed(stack, 6000)
    for provider in ("smsapi", "fcm", "smtp"):
        stack.sandbox.faults(provider, latency_ms=30)
    alert_id = stack.alert()
    wait_until(
        lambda: stack.sandbox.counts("smsapi")["accepted"] >= 300, 120, "the fan-out to start"
    )
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it goes
        client.shutdown(nosave=True)
    time.sleep(2)
    subprocess.run(REDIS_START, check=True)  # queued messages are gone with the old one
    for provider in ("smsapi", "fcm", "smtp"):
        stack.sandbox.faults(provider, latency_ms=0)
    stack.wait_all_final(alert_id, timeout=240)
    rows = stack.rows(alert_id)
    assert rows.get("sent", 0) + rows.get("delivered", 0) == stack.total(alert_id)
    assert stack.sandbox.counts("smsapi")["duplicates"] == 0


def test_cancel_stops_the_fan_out_within_seconds(stack: Stack) -> None:
    seed(stack, 8000)
    for provider in ("smsapi", "fcm", "smtp"):
        stack.sandbox.faults(provider, latency_ms=60)
    alert_id = stack.alert()
    wait_until(
        lambda: stack.sandbox.counts("smsapi")["accepted"] >= 300, 120, "the fan-out to start"
    )
    with stack.db.begin() as session:
        cancelled = lifecycle.cancel_alert(
            session=session, actor=stack.staff.author, alert_id=alert_id, reason="fałszywy alarm"
        )
        cancelled_at = cancelled.cancelled_at
    assert cancelled_at is not None
    time.sleep(3)  # what was in flight at the cancel lands
    settled = {p: stack.sandbox.counts(p)["accepted"] for p in ("smsapi", "fcm", "smtp")}
    time.sleep(4)
    assert {p: stack.sandbox.counts(p)["accepted"] for p in ("smsapi", "fcm", "smtp")} == settled
    rows = stack.rows(alert_id)
    assert rows.get("suppressed", 0) > 0
    assert rows.get("pending", 0) == 0
    with stack.db() as session:
        latest = session.scalar(
            select(Delivery.sent_at)
            .where(Delivery.alert_id == alert_id)
            .order_by(Delivery.sent_at.desc().nulls_last())
            .limit(1)
        )
    # Only batches already sending at the cancel may finish after it.
    assert latest is None or latest <= cancelled_at + timedelta(seconds=3)


def test_quiet_hours_hold_an_informational_alert_and_let_an_extreme_one_through(
    stack: Stack,
) -> None:
    now = datetime.now(ZoneInfo("Europe/Warsaw"))
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=1)).time().replace(second=0, microsecond=0)
    with stack.db.begin() as session:
        sleeper = add_resident(
            session,
            stack.settings,
            contacts=[("sms", "601000901")],
            topics=["weather-warning"],
            districts=["wola"],
        )
        session.get_one(Subscriber, sleeper.id).quiet_from = start
        session.get_one(Subscriber, sleeper.id).quiet_until = end
        add_resident(
            session,
            stack.settings,
            contacts=[("sms", "601000902")],
            topics=["weather-warning"],
            districts=["wola"],
        )
    info = stack.alert(
        whole_city=False, districts=["wola"], severity="Minor", urgency="Expected", channels=["sms"]
    )
    wait_until(
        lambda: stack.rows(info).get("sent", 0) + stack.rows(info).get("delivered", 0) == 1,
        60,
        "the informational alert to reach the resident outside quiet hours",
    )
    time.sleep(2)
    assert stack.rows(info).get("pending") == 1  # the other waits for the end of the window
    with stack.db() as session:
        held = session.scalar(
            select(Delivery.next_attempt_at).where(
                Delivery.alert_id == info, Delivery.status == DeliveryStatus.PENDING
            )
        )
    assert held is not None and held > datetime.now(UTC) + timedelta(minutes=50)
    extreme = stack.alert(
        whole_city=False, districts=["wola"], severity="Extreme", channels=["sms"]
    )
    stack.wait_all_final(extreme, timeout=60)
    rows = stack.rows(extreme)
    assert rows.get("sent", 0) + rows.get("delivered", 0) == 2


def assert_every_message_sent_once(stack: Stack, alert_id: int) -> None:
    total = stack.total(alert_id)
    rows = stack.rows(alert_id)
    assert sum(rows.values()) == total  # counters agree with the rows
    assert rows.get("sent", 0) + rows.get("delivered", 0) == total  # nothing lost or failed
    sent = sent_rows(stack, alert_id)
    for provider, channel in (("smsapi", "sms"), ("fcm", "push"), ("smtp", "email")):
        counts = stack.sandbox.counts(provider)
        assert counts["duplicates"] == 0, provider
        assert counts["accepted"] == sent.get(channel, 0), provider
    wait_until(lambda: stack.status(alert_id) == "done", 30, "the alert to be done")


# A lease longer than the time after which a published batch is published again (as in
# production: 120 s and 30 s): the batch runs again while the dead worker's claim holds.
LONG_LEASE = {"WSP_CLAIM_LEASE_SECONDS": "8", "WSP_REQUEUE_SECONDS": "2"}


def test_a_worker_killed_mid_call_and_never_restarted_loses_nothing(stack: Stack) -> None:
    seed(stack, 1500)
    # Beat and every queue but SMS in one worker; SMS in a worker of its own, killed while
    # it waits on SMSAPI and never started again. Another SMS worker takes over.
    stack.worker.stop()
    others = ",".join(q for q in QUEUES if q != "sms")
    stack.other_worker(others, "main", beat=True, **LONG_LEASE)
    doomed = stack.other_worker("sms", "sms1", **LONG_LEASE)
    stack.sandbox.faults("smsapi", latency_ms=4000)
    alert_id = stack.alert(channels=["sms"])
    wait_until(lambda: stack.rows(alert_id).get("sending", 0) > 0, 60, "an SMS batch to be claimed")
    time.sleep(0.5)  # its request is on the wire, waiting for the provider's answer
    doomed.kill()
    stack.sandbox.faults("smsapi", latency_ms=0)
    stack.other_worker("sms", "sms2", **LONG_LEASE)
    stack.wait_all_final(alert_id, timeout=120)
    assert_every_message_sent_once(stack, alert_id)


def test_a_channel_that_raises_loses_nothing(stack: Stack) -> None:
    seed(stack, 1000)
    # Push answers come back as a page firebase-admin's callers cannot read: the channel
    # raises for the whole wave. The messages wait and go again once FCM is itself again.
    stack.worker.stop()
    stack.other_worker(",".join(QUEUES), "main", beat=True, **LONG_LEASE)
    stack.sandbox.faults("fcm", garbage_rate=1)
    alert_id = stack.alert(channels=["sms", "push"])
    wait_until(lambda: stack.sandbox.counts("fcm")["errors"] >= 1, 60, "push to be tried")
    time.sleep(2)
    assert stack.sandbox.counts("fcm")["accepted"] == 0
    stack.sandbox.faults("fcm", garbage_rate=0)
    stack.wait_all_final(alert_id, timeout=120)
    assert_every_message_sent_once(stack, alert_id)


def test_a_cancel_stops_a_batch_between_its_provider_requests(stack: Stack) -> None:
    seed(stack, 4000)
    # FCM answers each push in a second; a batch of 500 goes as waves of 100 requests
    # (one per connection). Only the wave already on the wire may land after a cancel.
    stack.sandbox.faults("fcm", latency_ms=1000)
    alert_id = stack.alert(channels=["push"])
    wait_until(lambda: stack.sandbox.counts("fcm")["accepted"] >= 100, 60, "the first wave to land")
    with stack.db.begin() as session:
        lifecycle.cancel_alert(
            session=session, actor=stack.staff.author, alert_id=alert_id, reason="fałszywy alarm"
        )
    cancelled = time.monotonic()
    at_cancel = last = stack.sandbox.counts("fcm")["accepted"]
    last_change = cancelled
    while time.monotonic() - cancelled < 6:
        now = stack.sandbox.counts("fcm")["accepted"]
        if now != last:
            last, last_change = now, time.monotonic()
        time.sleep(0.05)
    after = last - at_cancel
    stopped = last_change - cancelled
    print(f"after the cancel: {after} pushes landed, the last {stopped:.2f} s after it")
    assert after <= 100, f"{after} pushes landed after the cancel"
    assert stopped <= 1.6, f"pushes kept landing {stopped:.2f} s after the cancel"
    stack.wait_all_final(alert_id, timeout=60)
    rows = stack.rows(alert_id)
    assert rows.get("suppressed", 0) > 0 and set(rows) <= {"sent", "suppressed"}
    assert rows.get("sent", 0) == last
