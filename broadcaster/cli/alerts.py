"""`broadcaster alert`: write, submit, approve, reject, cancel and inspect alerts."""

from __future__ import annotations

from typing import Any

import click

from broadcaster.alerts import drafts, lifecycle
from broadcaster.alerts import services as alerts
from broadcaster.alerts.drafts import texts_from_fields
from broadcaster.alerts.messages import preview_alert
from broadcaster.cli.context import (
    App,
    BroadcasterGroup,
    WarsawTime,
    as_option,
    echo_json,
    pass_app,
)
from broadcaster.dispatch import progress
from broadcaster.dispatch.audience import count_audience
from broadcaster.staff import operators
from broadcaster.wording import words


@click.group(cls=BroadcasterGroup)
def alert() -> None:
    """Write, submit, approve, reject, cancel and inspect alerts."""


@alert.command("create")
@as_option
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
    draft = drafts.AlertDraft(
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
    echo_json(view) if as_json else click.echo(f"alert {view['id']} created as a draft")


def _move(app: App, username: str, action: str, alert_id: int, **kwargs: Any) -> None:
    with app.transaction() as session:
        actor = operators.get_operator(session=session, username=username)
        if action == "submit":
            moved = lifecycle.submit_alert(
                session=session, settings=app.settings, actor=actor, alert_id=alert_id
            )
        elif action == "approve":
            moved = lifecycle.approve_alert(
                session=session, settings=app.settings, approver=actor, alert_id=alert_id
            )
        elif action == "reject":
            moved = lifecycle.reject_alert(
                session=session, approver=actor, alert_id=alert_id, **kwargs
            )
        else:
            moved = lifecycle.cancel_alert(
                session=session, actor=actor, alert_id=alert_id, **kwargs
            )
        click.echo(f"alert {moved.id} is now {moved.status}")


@alert.command("submit")
@click.argument("alert_id", type=int)
@as_option
@pass_app
def alert_submit(app: App, alert_id: int, username: str) -> None:
    """Send a draft for approval."""
    _move(app, username, "submit", alert_id)


@alert.command("approve")
@click.argument("alert_id", type=int)
@as_option
@pass_app
def alert_approve(app: App, alert_id: int, username: str) -> None:
    """Approve an alert written by somebody else."""
    _move(app, username, "approve", alert_id)


@alert.command("reject")
@click.argument("alert_id", type=int)
@as_option
@click.option("--reason", required=True)
@pass_app
def alert_reject(app: App, alert_id: int, username: str, reason: str) -> None:
    """Send an alert back to its author."""
    _move(app, username, "reject", alert_id, reason=reason)


@alert.command("cancel")
@click.argument("alert_id", type=int)
@as_option
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
        echo_json(view)
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
        echo_json(view)
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
