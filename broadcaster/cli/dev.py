"""The commands for trying the system out: `seed-demo` (a synthetic population), `demo`
(the whole pipeline) and `sandbox` (the loopback providers)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from broadcaster.cli.context import App, CliError, echo_json, pass_app
from broadcaster.dev import population
from broadcaster.dev.demo import STALL_SECONDS, run_demo
from broadcaster.dev.stack import StackError
from broadcaster.errors import InvalidInput
from broadcaster.settings import Environment
from channels.sandbox.server import SandboxServer


@click.command("seed-demo")
@click.option(
    "--subscribers",
    "count",
    type=click.IntRange(1, 5_000_000),
    default=20_000,
    show_default=True,
    help="How many synthetic residents to add.",
)
@click.option("--seed", "random_seed", type=int, default=2024, show_default=True)
@pass_app
def seed_demo(app: App, count: int, random_seed: int) -> None:
    """Add a synthetic population spread over the districts (COPY on PostgreSQL).

    Refused in production: the synthetic numbers are real Polish mobile numbers.
    """
    if app.settings.env is Environment.PRODUCTION:
        raise InvalidInput("WSP_ENV", "synthetic residents are never added in production")
    with (
        app.transaction() as session,
        click.progressbar(length=count, label="residents", file=sys.stderr) as bar,
    ):
        report = population.seed_population(
            session=session, count=count, seed=random_seed, progress=bar.update
        )
    click.echo(
        f"added {report.subscribers} subscribers, {report.contact_points} contact points, "
        f"{report.subscriptions} subscriptions"
    )


@click.command()
@click.option(
    "--subscribers",
    "count",
    type=click.IntRange(1, 5_000_000),
    default=20_000,
    show_default=True,
    help="Size of the synthetic population.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(10, 7200),
    default=600,
    show_default=True,
    help="Seconds to wait for every message to reach a final state.",
)
@click.option(
    "--stall",
    type=click.FloatRange(10, 7200),
    default=STALL_SECONDS,
    show_default=True,
    help="Seconds without any change on the alert after which the demo gives up.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_app
def demo(app: App, count: int, timeout: float, stall: float, as_json: bool) -> None:
    """The whole pipeline on embedded defaults: seed, alert, approve, fan out, report.

    A worker or beat that does not start or stops ends it at once (exit 1), with its exit
    code and the end of its log."""
    with (
        click.progressbar(length=count, label="seeding residents  ", file=sys.stderr) as seeding,
        click.progressbar(length=1, label="delivering messages", file=sys.stderr) as bar,
    ):

        def advance(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        try:
            report = run_demo(
                settings=app.settings,
                residents=count,
                timeout=timeout,
                stall=stall,
                progress_bar=advance,
                seeding=seeding.update,
            )
        except StackError as error:
            raise CliError(str(error), 1) from None
    if as_json:
        echo_json(report.as_dict())
    else:
        view = report.alert
        click.echo(f"database: {report.database}")
        click.echo(f"residents: {report.residents} synthetic, spread over the 18 districts")
        click.echo(f"alert {view['id']} [{view['status']}]: {view['title_pl']}")
        click.echo(
            f"  {view['severity']}/{view['urgency']}, districts {', '.join(view['districts'])}, "
            f"written by operator {view['author_id']}, approved by operator {view['approver_id']}"
        )
        click.echo("deliveries per channel and status, and what the sandbox received:")
        for channel, by_status in sorted(report.deliveries.items()):
            statuses = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
            click.echo(
                f"  {channel:6} {statuses:60} sandbox accepted {report.sandbox.get(channel, 0)}"
            )
        click.echo(f"delivery reports: {report.receipts.get('smsapi', {})}")
        click.echo(f"audit trail: {report.audit}")
        click.echo(f"took {report.seconds:.1f} s")
        for problem in report.problems:
            click.echo(f"PROBLEM: {problem}", err=True)
    if not report.ok:
        raise SystemExit(1)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--smsapi-port", type=click.IntRange(0, 65535), default=9001, show_default=True)
@click.option(
    "--fcm-port",
    type=click.IntRange(0, 65535),
    default=9443,
    show_default=True,
    help="FCM over TLS (HTTP/2).",
)
@click.option("--fcm-plain-port", type=click.IntRange(0, 65535), default=9080, show_default=True)
@click.option(
    "--fcm-http1-port",
    type=click.IntRange(0, 65535),
    default=9445,
    show_default=True,
    help="FCM over TLS and HTTP/1.1 on aiohttp's server, cheaper per request (load tests).",
)
@click.option("--smtp-port", type=click.IntRange(0, 65535), default=2525, show_default=True)
@click.option("--receipt-url", help="Where SMSAPI delivery reports are called back.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the settings that point at the sandbox to this file.",
)
@pass_app
def sandbox(
    app: App,
    host: str,
    smsapi_port: int,
    fcm_port: int,
    fcm_plain_port: int,
    fcm_http1_port: int,
    smtp_port: int,
    receipt_url: str | None,
    env_file: Path | None,
) -> None:
    """Run the loopback SMSAPI, FCM and SMTP sandboxes until interrupted (Ctrl-C)."""
    server = SandboxServer(
        directory=app.settings.data_dir / "sandbox",
        host=host,
        smsapi_port=smsapi_port,
        fcm_port=fcm_port,
        fcm_plain_port=fcm_plain_port,
        fcm_http1_port=fcm_http1_port,
        smtp_port=smtp_port,
        receipt_url=receipt_url,
    )

    async def run() -> None:
        endpoints = await server.start()
        environment = endpoints.environment()
        lines = [f"export {name}={value}" for name, value in environment.items()]
        # Not a setting: where load tests may point WSP_FCM_ENDPOINT instead.
        lines.append(f"export SANDBOX_FCM_HTTP1_URL={endpoints.fcm_http1_url}")
        if env_file is not None:
            env_file.write_text("\n".join(lines) + "\n")
        click.echo(f"SMSAPI  {endpoints.smsapi_url}sms.do")
        click.echo(
            f"FCM     {endpoints.fcm_url} (TLS, HTTP/2), {endpoints.fcm_plain_url} (plain), "
            f"{endpoints.fcm_http1_url} (TLS, HTTP/1.1, for load)"
        )
        click.echo(f"SMTP    {endpoints.host}:{endpoints.smtp_port} (STARTTLS)")
        click.echo(
            f"control {endpoints.control_url}/{{smsapi,fcm,smtp}}/{{counts,messages,faults,reset}}"
        )
        click.echo("settings that point the system at the sandbox:")
        click.echo("\n".join(lines))
        click.echo("sandbox ready", err=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
