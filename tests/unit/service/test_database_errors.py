"""Which database errors are "the database is away" (503 + Retry-After) and which are bugs (500):
the cluster test saw 500s while PostgreSQL restarted, from errors that were neither
OperationalError nor InterfaceError."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from shared.service.problem import database_unavailable


def wrapped(error: Exception, cls: type[sa_exc.DBAPIError] = sa_exc.DBAPIError) -> Exception:
    """What SQLAlchemy raises for an asyncpg error (the adapter's error keeps it as __cause__)."""

    class Adapted(Exception):
        pass

    adapted = Adapted(str(error))
    adapted.__cause__ = error
    return cls("SELECT 1", {}, adapted)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")),
        wrapped(
            asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation"),
            sa_exc.InternalError,
        ),
        wrapped(asyncpg.exceptions.TooManyConnectionsError("too many clients")),
        sa_exc.OperationalError("SELECT 1", {}, Exception("no route")),
        ConnectionResetError(),
    ],
)
def test_the_database_going_away_is_unavailable(error: Exception) -> None:
    assert database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key"), sa_exc.IntegrityError),
        wrapped(asyncpg.exceptions.UndefinedColumnError("column does not exist")),
        ValueError("a bug"),
    ],
)
def test_other_errors_are_bugs(error: Exception) -> None:
    assert not database_unavailable(error)


def test_an_invalidated_connection_is_unavailable() -> None:
    error = sa_exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert database_unavailable(error)
