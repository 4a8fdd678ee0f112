"""What every command of the `broadcaster` command line shares: the `App` it acts on, the
error it exits with, the group that turns our domain errors into exit codes, and the
parameter types and helpers the commands have in common.

Exit codes: 0 done; 2 bad input or unknown object (the message names the field or
setting); 3 not allowed (role, four-eyes rule); 4 the object's state forbids it (an alert
already cancelled, expired, ...); 1 anything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cached_property
from typing import Any

import click
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from broadcaster import clock
from broadcaster.db.engine import make_engine, make_sessionmaker
from broadcaster.errors import (
    BroadcasterError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from broadcaster.settings import Settings

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


def as_option(function: Any) -> Any:
    """`--as USERNAME` (or WSP_CLI_OPERATOR): the staff member acting."""
    return click.option(
        "--as",
        "username",
        required=True,
        envvar="WSP_CLI_OPERATOR",
        help="The staff member acting (username).",
    )(function)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
