"""The `broadcaster` command line: the root group, the commands that set the system up
(`migrate`, `seed`) and run it (`serve`), and the groups and commands of the other modules
of this package registered under it. Exit codes: broadcaster/cli/context.py."""

from __future__ import annotations

import click

from broadcaster.cli import alerts, audit, dev, staff
from broadcaster.cli.context import App, BroadcasterGroup, CliError, pass_app
from broadcaster.db import migrate as schema
from broadcaster.reference import services as reference
from broadcaster.settings import SettingsError, load_settings


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


main.add_command(staff.operator)
main.add_command(staff.token)
main.add_command(alerts.alert)
main.add_command(audit.audit_group)
main.add_command(dev.seed_demo)
main.add_command(dev.demo)
main.add_command(dev.sandbox)
