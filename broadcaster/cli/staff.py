"""`broadcaster operator` and `broadcaster token`: staff accounts and their API tokens."""

from __future__ import annotations

import click

from broadcaster.cli.context import App, BroadcasterGroup, pass_app
from broadcaster.staff import operators, tokens


@click.group(cls=BroadcasterGroup)
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


@click.group(cls=BroadcasterGroup)
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
