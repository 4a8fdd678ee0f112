"""`broadcaster audit`: verify the audit trail, seal its tip again, take checkpoints."""

from __future__ import annotations

from typing import TextIO

import click

from broadcaster.audit import verification
from broadcaster.cli.context import App, BroadcasterGroup, as_option, pass_app
from broadcaster.staff import operators, permissions
from broadcaster.staff.permissions import Action
from broadcaster.wording import refusal


@click.group(cls=BroadcasterGroup, name="audit")
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
@as_option
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
