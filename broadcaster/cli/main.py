"""The `broadcaster` command line.

Exit codes: 0 done; 2 bad input or unknown object (the message names the field or
setting); 3 not allowed (role, four-eyes rule); 4 the object's state forbids it (an alert
already cancelled, expired, ...); 1 anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from broadcaster import clock
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import texts_from_fields
from broadcaster.alerts.messages import preview_alert
from broadcaster.audit import verification
from broadcaster.db import migrate as schema
from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.dev import population
from broadcaster.dev.demo import STALL_SECONDS, run_demo
from broadcaster.dev.stack import StackError
from broadcaster.dispatch import progress
from broadcaster.dispatch.audience import count_audience
from broadcaster.errors import (
    BroadcasterError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from broadcaster.reference import services as reference
from broadcaster.settings import Environment, Settings, SettingsError, load_settings
from broadcaster.staff import operators, permissions, tokens
from broadcaster.staff.permissions import Action
from broadcaster.wording import refusal, words
from channels.sandbox.server import SandboxServer

EXIT_CODES: dict[type[BroadcasterError], int] = {
    Unauthenticated: 3,
    RateLimited: 5,
    InvalidInput: 2,
    NotFound: 2,
    Forbidden: 3,
    Conflict: 4,
}


class CliError(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click declares exit_code on the class; ours varies with the error.
        self.exit_code = exit_code  # type: ignore[misc]


class BroadcasterGroup(click.Group):
    """Turns our domain errors into a one-line message and a meaningful exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BroadcasterError as error:
            code = next((c for kind, c in EXIT_CODES.items() if isinstance(error, kind)), 1)
            raise CliError(str(error), code) from None


class App:
    """What every command needs: the settings, and the database built from them lazily."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine, secret_key=self.settings.secret_key)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


class WarsawTime(click.ParamType[datetime, Any]):
    """An ISO 8601 date-time; without an offset it is read as Warsaw's clock, as the
    console reads its forms (broadcaster/clock.py): the hour the clocks skip is refused."""

    name = "datetime"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return clock.parse_local(str(value), param.name if param and param.name else "time")
        except InvalidInput as error:
            self.fail(error.message, param, ctx)


pass_app = click.make_pass_decorator(App)


@click.group(cls=BroadcasterGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Warszawski System Powiadomień: targeted alerts for Warsaw's residents."""
    try:
        settings = load_settings()
    except SettingsError as error:
        raise CliError(f"setting {error}", 2) from None
    ctx.obj = App(settings)
    ctx.call_on_close(ctx.obj.close)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@main.command()
@pass_app
def migrate(app: App) -> None:
    """Create or upgrade the database schema."""
    schema.upgrade(app.engine, secret_key=app.settings.secret_key)
    click.echo(f"database at {app.engine.url.render_as_string(hide_password=True)} is up to date")


@main.command()
@pass_app
def seed(app: App) -> None:
    """Insert or refresh the reference data: districts and topics."""
    with app.transaction() as session:
        new_districts, new_topics = reference.seed_reference_data(session=session)
    click.echo(
        f"reference data: {len(reference.DISTRICTS)} districts ({new_districts} new), "
        f"{len(reference.TOPICS)} topics ({new_topics} new)"
    )


@main.command("seed-demo")
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


@main.group(cls=BroadcasterGroup)
def operator() -> None:
    """Staff accounts."""


@operator.command("add")
@click.argument("username")
@click.option("--role", required=True, help="operator, approver, auditor or admin")
@click.option("--name", "display_name", required=True)
@pass_app
def operator_add(app: App, username: str, role: str, display_name: str) -> None:
    """Create a staff account."""
    with app.transaction() as session:
        created = operators.create_operator(
            session=session,
            username=username,
            role=role,
            display_name=display_name,
            created_by="system:cli",
        )
        click.echo(f"operator {created.username} ({created.role}) has id {created.id}")


@main.group(cls=BroadcasterGroup)
def token() -> None:
    """Staff API tokens: issue (shown once), revoke."""


@token.command("issue")
@click.option("--as", "username", required=True, envvar="WSP_CLI_OPERATOR")
@click.option("--name", "label", default="api", show_default=True, help="What it is for.")
@click.option("--days", type=int, default=30, show_default=True, help="Lifetime, 1-365.")
@pass_app
def token_issue(app: App, username: str, label: str, days: int) -> None:
    """Issue an API token for yourself; it is printed once and stored only as a hash."""
    with app.transaction() as session:
        owner = operators.get_operator(session=session, username=username)
        issued = tokens.issue_token(session=session, operator=owner, name=label, lifetime_days=days)
    click.echo(f"token {issued.id} expires {issued.expires_at:%Y-%m-%d %H:%M} UTC")
    click.echo(issued.token)


@token.command("revoke")
@click.argument("token_id", type=int)
@click.option("--as", "username", required=True, envvar="WSP_CLI_OPERATOR")
@pass_app
def token_revoke(app: App, token_id: int, username: str) -> None:
    """Revoke a token (your own, or anyone's as an admin)."""
    with app.transaction() as session:
        actor = operators.get_operator(session=session, username=username)
        tokens.revoke_token(session=session, actor=actor, token_id=token_id)
    click.echo(f"token {token_id} revoked")


@main.group(cls=BroadcasterGroup)
def alert() -> None:
    """Write, submit, approve, reject, cancel and inspect alerts."""


def _as_option(function: Any) -> Any:
    return click.option(
        "--as",
        "username",
        required=True,
        envvar="WSP_CLI_OPERATOR",
        help="The staff member acting (username).",
    )(function)


@alert.command("create")
@_as_option
@click.option("--topic", required=True, help="Topic slug, e.g. weather-warning.")
@click.option("--district", "districts", multiple=True, help="District slug; repeat for more.")
@click.option("--whole-city", is_flag=True, help="Target every district.")
@click.option("--severity", required=True, help="CAP severity: Extreme, Severe, Moderate, Minor.")
@click.option("--urgency", required=True, help="CAP urgency: Immediate, Expected, Future, Past.")
@click.option("--channel", "channels", multiple=True, required=True, help="sms, push or email.")
@click.option("--cap-status", default="Actual", show_default=True, help="Actual, Exercise or Test.")
@click.option("--title-pl", required=True)
@click.option("--body-pl", required=True)
@click.option("--title-en")
@click.option("--body-en")
@click.option("--title-uk")
@click.option("--body-uk")
@click.option(
    "--send-at", type=WarsawTime(), help="Send no earlier than this (default: on approval)."
)
@click.option("--expires-at", type=WarsawTime(), help="Stop trying after this.")
@click.option(
    "--transliterate-sms",
    is_flag=True,
    help="Spell Polish and Ukrainian letters in GSM-7: 160 characters a part, not 70.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def alert_create(app: App, /, username: str, **options: Any) -> None:
    """Write a draft alert."""
    contents = texts_from_fields(options)
    as_json = options.pop("as_json")
    draft = alerts.AlertDraft(
        topic=options["topic"],
        districts=options["districts"],
        whole_city=options["whole_city"],
        severity=options["severity"],
        urgency=options["urgency"],
        channels=options["channels"],
        cap_status=options["cap_status"],
        transliterate_sms=options["transliterate_sms"],
        contents=contents,
        send_at=options["send_at"],
        expires_at=options["expires_at"],
    )
    with app.transaction() as session:
        author = operators.get_operator(session=session, username=username)
        created = alerts.create_alert(
            session=session, settings=app.settings, author=author, draft=draft
        )
        view = alerts.describe_alert(created)
    _echo_json(view) if as_json else click.echo(f"alert {view['id']} created as a draft")


def _move(app: App, username: str, action: str, alert_id: int, **kwargs: Any) -> None:
    with app.transaction() as session:
        actor = operators.get_operator(session=session, username=username)
        if action == "submit":
            moved = alerts.submit_alert(
                session=session, settings=app.settings, actor=actor, alert_id=alert_id
            )
        elif action == "approve":
            moved = alerts.approve_alert(
                session=session, settings=app.settings, approver=actor, alert_id=alert_id
            )
        elif action == "reject":
            moved = alerts.reject_alert(
                session=session, approver=actor, alert_id=alert_id, **kwargs
            )
        else:
            moved = alerts.cancel_alert(session=session, actor=actor, alert_id=alert_id, **kwargs)
        click.echo(f"alert {moved.id} is now {moved.status}")


@alert.command("submit")
@click.argument("alert_id", type=int)
@_as_option
@pass_app
def alert_submit(app: App, alert_id: int, username: str) -> None:
    """Send a draft for approval."""
    _move(app, username, "submit", alert_id)


@alert.command("approve")
@click.argument("alert_id", type=int)
@_as_option
@pass_app
def alert_approve(app: App, alert_id: int, username: str) -> None:
    """Approve an alert written by somebody else."""
    _move(app, username, "approve", alert_id)


@alert.command("reject")
@click.argument("alert_id", type=int)
@_as_option
@click.option("--reason", required=True)
@pass_app
def alert_reject(app: App, alert_id: int, username: str, reason: str) -> None:
    """Send an alert back to its author."""
    _move(app, username, "reject", alert_id, reason=reason)


@alert.command("cancel")
@click.argument("alert_id", type=int)
@_as_option
@click.option("--reason", required=True)
@pass_app
def alert_cancel(app: App, alert_id: int, username: str, reason: str) -> None:
    """Cancel an alert in any live state."""
    _move(app, username, "cancel", alert_id, reason=reason)


@alert.command("show")
@click.argument("alert_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def alert_show(app: App, alert_id: int, as_json: bool) -> None:
    """An alert, its state and its audience per channel."""
    with app.transaction() as session:
        found = alerts.get_alert(session=session, alert_id=alert_id)
        view = alerts.describe_alert(found)
        view["audience"] = count_audience(session=session, alert=found)
        view["progress"] = progress.read(session, found.id)
    if as_json:
        _echo_json(view)
        return
    status = view["status"]
    if view["outcome"] == alerts.DONE_WITH_FAILURES:
        status = f"{status}, {words('status.done_with_failures', failed=view['failed'])['en']}"
    click.echo(f"alert {view['id']}: {status}  [{view['cap_status']}]")
    districts = view["districts"] if view["districts"] == "*" else ", ".join(view["districts"])
    click.echo(
        f"  {view['severity']} / {view['urgency']}  topic {view['topic']}  districts {districts}"
    )
    for language, content in view["contents"].items():
        click.echo(f"  [{language}] {content['title']}: {content['body']}")
    click.echo(
        f"  channels {', '.join(view['channels'])}; send at {view['send_at'] or 'approval'}; "
        f"expires {view['expires_at']}"
    )
    audience = view["audience"]
    click.echo(
        "  audience: " + (", ".join(f"{k} {v}" for k, v in sorted(audience.items())) or "nobody")
    )
    for channel, by_status in sorted(view["progress"].items()):
        counts = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
        click.echo(f"  {channel}: {counts}")
    if view["status_reason"]:
        click.echo(f"  reason: {view['status_reason']}")


@alert.command("preview")
@click.argument("alert_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def alert_preview(app: App, alert_id: int, as_json: bool) -> None:
    """Every message variant, as residents will see it, with SMS encoding and parts."""
    with app.transaction() as session:
        found = alerts.get_alert(session=session, alert_id=alert_id)
        view = preview_alert(
            session=session,
            alert=found,
            sms_max_parts=app.settings.sms_max_parts,
            sms_part_price=app.settings.sms_part_price,
        )
    if as_json:
        _echo_json(view)
        return
    for language, variant in view["variants"].items():
        if "sms" in variant:
            sms = variant["sms"]
            click.echo(
                f"[{language}] SMS  {sms['characters']} characters, {sms['encoding']}, "
                f"{sms['parts']} part(s) x {sms['recipients']} = {sms['total_parts']} parts"
            )
            click.echo(f"       {sms['text']}")
            if sms["over_limit"]:
                problem = sms["problem"]
                click.echo(f"       ! {problem['messages']['en']}. {problem['remedy']['en']}")
        if "push" in variant:
            push = variant["push"]
            click.echo(
                f"[{language}] push {push['title']} | {push['body']} ({push['recipients']} devices)"
            )
        if "email" in variant:
            email = variant["email"]
            click.echo(f"[{language}] mail {email['subject']} ({email['recipients']} addresses)")
    totals = view["sms"]
    suffix = " (transliterated)" if totals["transliterated"] else ""
    click.echo(
        f"SMS in all: {totals['recipients']} recipients, {totals['total_parts']} parts{suffix}"
    )


@main.group(cls=BroadcasterGroup, name="audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.File("r", encoding="utf-8", errors="strict"),
    help="A file of checkpoints (`audit checkpoint` lines, or a worker's log); - for standard "
    "input; may be given more than once. Records cut after a checkpoint was taken then show.",
)
@pass_app
def audit_verify(app: App, checkpoint_files: tuple[TextIO, ...]) -> None:
    """Check the whole hash chain and its sealed tip; exit 1 and name the first broken
    record if it is not intact."""
    checkpoints = _read_checkpoints(checkpoint_files)
    with app.transaction() as session:
        verdict = verification.verify_chain(
            session=session, checkpoints=checkpoints, field="--checkpoint"
        )
    click.echo(verdict.describe())
    if checkpoints:
        newest = max(checkpoints, key=lambda checkpoint: checkpoint.seq)
        click.echo(
            f"checked against {len(checkpoints)} checkpoint(s), the newest at seq {newest.seq}"
        )
    if not verdict.intact:
        raise SystemExit(1)


def _read_checkpoints(files: tuple[TextIO, ...]) -> list[verification.Checkpoint]:
    checkpoints: list[verification.Checkpoint] = []
    for handle in files:
        try:
            text = handle.read()
        except UnicodeDecodeError:
            raise refusal("--checkpoint", "audit.not_utf8", name=handle.name) from None
        checkpoints += verification.parse_checkpoints(text, field=f"--checkpoint {handle.name}")
    return checkpoints


@audit_group.command("reseal")
@_as_option
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.File("r", encoding="utf-8", errors="strict"),
    help="Checkpoints kept outside the database (at least one: the newest you hold).",
)
@pass_app
def audit_reseal(app: App, username: str, checkpoint_files: tuple[TextIO, ...]) -> None:
    """Admins: seal again a tip found unsealed, once the chain verifies in every other way
    against the checkpoints given; the reseal is recorded in the trail (exit 4 if the tip
    is sealed, or the chain is broken elsewhere)."""
    checkpoints = _read_checkpoints(checkpoint_files)
    with app.transaction() as session:
        admin = operators.get_operator(session=session, username=username)
        permissions.require(admin, Action.RESEAL_AUDIT_TRAIL)
        seq = verification.reseal(
            session=session, actor=operators.actor_of(admin), checkpoints=checkpoints
        )
    click.echo(f"sealed again; the reseal is record seq {seq}")


@audit_group.command("checkpoint")
@pass_app
def audit_checkpoint(app: App) -> None:
    """Verify the chain, then print a checkpoint of its tip: one line to keep outside the
    database and give to `audit verify --checkpoint`. Exit 1, printing none, if the chain
    does not verify."""
    with app.transaction() as session:
        checkpoint = verification.take_checkpoint(session=session)
    if checkpoint is None:
        click.echo(
            "the audit trail does not verify, so no checkpoint: run `audit verify`", err=True
        )
        raise SystemExit(1)
    click.echo(checkpoint.as_line())


@main.command()
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
        _echo_json(report.as_dict())
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


@main.command()
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@pass_app
def serve(app: App, host: str, port: int) -> None:
    """Serve the HTTP application (staff, residents, auditors, provider callbacks)."""
    import logging

    import uvicorn

    from broadcaster.http.app import create_app, server_config
    from broadcaster.http.support import HideSecretPaths

    logging.getLogger("uvicorn.access").addFilter(HideSecretPaths())
    config = server_config(create_app(app.settings), host=host, port=port, log_level="info")
    uvicorn.Server(config).run()
