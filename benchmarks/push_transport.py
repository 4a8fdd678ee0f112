"""Push throughput: firebase-admin's own transport against ours, side by side.

Both send the same firebase-admin messages (built and validated by the library, errors
mapped by the library) to the sandbox's FCM endpoint over TLS, in batches of 500; only
what moves the requests differs:
  library  messaging.send_each_async: httpx over HTTP/2 (firebase-admin as shipped)
  aiohttp  one aiohttp session, pooled HTTP/1.1 keep-alive connections
and, as the ceiling of the sandbox server itself, bare aiohttp posts of prebuilt bodies.

Usage: python -m benchmarks.push_transport [--messages N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.sandbox_process import sandbox_process
from channels.interfaces import Message, Outcome
from channels.push import FcmConfig, FirebasePushChannel


def messages(count: int, offset: int) -> list[Message]:
    return [
        Message(
            delivery_id=offset + n,
            address=f"bench-device-{offset + n:09d}:APA91b" + "x" * 100,
            title="Ostrzeżenie",
            text="Silne burze z gradem od 18:00.",
            data={"alert_id": "1"},
        )
        for n in range(count)
    ]


async def through_channel(
    env: dict[str, str], transport: str, batch: list[Message]
) -> tuple[float, float]:
    channel = FirebasePushChannel(
        FcmConfig(
            project_id=env["WSP_FCM_PROJECT_ID"],
            credentials_file=env["WSP_FCM_CREDENTIALS_FILE"],
            endpoint=env["WSP_FCM_ENDPOINT"],
            transport=transport,
            ca_file=env["WSP_FCM_CA_FILE"],
        )
    )
    try:
        await channel.send_batch(batch[:10])  # token, connections: warm up outside the clock
        started, cpu = time.perf_counter(), time.process_time()
        results = []
        for start in range(0, len(batch), 500):
            results.extend(await channel.send_batch(batch[start : start + 500]))
        elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await channel.aclose()
    sent = sum(r.outcome is Outcome.SENT for r in results)
    if sent != len(batch):
        codes = sorted({str(r.error_code) for r in results if r.outcome is not Outcome.SENT})
        raise RuntimeError(f"{transport}: only {sent} of {len(batch)} sent ({codes})")
    return len(batch) / elapsed, used / len(batch) * 1e6


async def bare_posts(env: dict[str, str], count: int) -> tuple[float, float]:
    """The sandbox's own ceiling: prebuilt bodies, no firebase-admin at all."""
    context = ssl.create_default_context(cafile=env["WSP_FCM_CA_FILE"])
    url = f"{env['WSP_FCM_ENDPOINT']}/v1/projects/{env['WSP_FCM_PROJECT_ID']}/messages:send"
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, ssl=context)
    ) as session:
        async with session.post(
            f"{env['WSP_FCM_ENDPOINT']}/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x"},
        ) as answer:
            token = (await answer.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        bodies = [
            json.dumps(
                {
                    "message": {
                        "token": f"bare-device-{n:09d}:APA91b" + "x" * 100,
                        "notification": {"title": "a", "body": "b"},
                    }
                }
            ).encode()
            for n in range(count)
        ]

        async def post(body: bytes) -> int:
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                return answer.status

        started, cpu = time.perf_counter(), time.process_time()
        statuses = []
        for start in range(0, count, 500):
            statuses.extend(await asyncio.gather(*(post(b) for b in bodies[start : start + 500])))
        elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    if statuses.count(200) != count:
        raise RuntimeError("bare posts failed")
    return count / elapsed, used / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    figures: dict[str, dict[str, list[float]]] = {
        name: {"rate": [], "cpu_us": []} for name in ("library", "aiohttp", "bare")
    }
    with tempfile.TemporaryDirectory() as directory, sandbox_process(Path(directory)) as env:
        os.environ["SSL_CERT_FILE"] = env["WSP_FCM_CA_FILE"]  # firebase-admin's httpx trusts it
        for round_number in range(options.rounds):
            for name in ("library", "aiohttp", "bare"):
                batch = messages(
                    options.messages, offset=(round_number * 3 + len(figures[name]["rate"])) * 10**6
                )
                if name == "bare":
                    rate, cpu = asyncio.run(bare_posts(env, options.messages))
                else:
                    rate, cpu = asyncio.run(through_channel(env, name, batch))
                figures[name]["rate"].append(rate)
                figures[name]["cpu_us"].append(cpu)
    report: dict[str, Any] = {
        name: {
            "messages_per_second": round(statistics.median(f["rate"])),
            "client_cpu_us_per_message": round(statistics.median(f["cpu_us"])),
            "runs": [round(r) for r in f["rate"]],
        }
        for name, f in figures.items()
    }
    report["ratio_aiohttp_over_library"] = round(
        report["aiohttp"]["messages_per_second"] / report["library"]["messages_per_second"], 2
    )
    report["messages"] = options.messages
    report["rounds"] = options.rounds
    if options.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"push to the FCM sandbox over TLS, {options.messages} messages, "
        f"median of {options.rounds} runs"
    )
    for name, label in (
        ("library", "firebase-admin send_each_async (httpx, HTTP/2)"),
        ("aiohttp", "firebase-admin messages, aiohttp transport"),
        ("bare", "bare aiohttp posts (sandbox ceiling)"),
    ):
        row = report[name]
        print(
            f"  {label:48} {row['messages_per_second']:>7} msg/s  "
            f"{row['client_cpu_us_per_message']:>5} us CPU/msg  runs {row['runs']}"
        )
    print(f"  ours / library: {report['ratio_aiohttp_over_library']}x")


if __name__ == "__main__":
    main()
