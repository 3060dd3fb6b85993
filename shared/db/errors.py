"""Which database errors mean "no database now" (docs/adr/0019): the driver's own codes inside
SQLAlchemy's wrapper, SQLite's lock and the pool's timeout. Kept beside the engine, so the
error hierarchy (`shared.errors`) stays free of database imports."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from shared.errors import DatabaseTimeout, DatabaseUnavailable

# MySQL/MariaDB error codes that mean "no database now", not "this request is wrong":
# 1040 too many connections, 1053 server shutdown in progress, 1927 connection killed (by a
# shutdown), 2002/2003 cannot connect (socket/TCP), 2006 server has gone away, 2013 lost
# connection during query, 2055 lost connection at a handshake stage, 4031 disconnected by
# the server (MySQL 8: idle).
UNAVAILABLE_MYSQL_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
SQLITE_BUSY = 5  # "database is locked": the busy timeout passed while another holds the lock


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception inside SQLAlchemy's wrapper (`orig`), else `error`."""
    original = getattr(error, "orig", None)
    return original if isinstance(original, BaseException) else error


def _mysql_code(error: BaseException) -> int | None:
    """The error code of a MySQL driver error (asyncmy, PyMySQL: args[0]), else None."""
    module = type(error).__module__.split(".", 1)[0]
    if module not in ("asyncmy", "pymysql") or not error.args:
        return None
    code = error.args[0]
    return code if isinstance(code, int) else None


def _is_unavailable(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable | DatabaseTimeout | sa_exc.TimeoutError):
        return True  # sa_exc.TimeoutError: no pooled connection free within pool_timeout
    # By the driver's own code, not SQLAlchemy's `connection_invalidated`, which also covers
    # "commands out of sync" (a bug of ours, which must stay a 500).
    driver = _driver_error(error)
    if driver is not error and isinstance(driver, DatabaseTimeout):
        return True
    code = _mysql_code(driver)
    if code is not None:
        if code in UNAVAILABLE_MYSQL_CODES:
            return True
        # Code 0: the driver's connection was already closed (broken earlier, cut off midway).
        return code == 0 and type(driver).__name__ == "InterfaceError"
    if type(driver).__module__ == "sqlite3" and type(driver).__name__ == "OperationalError":
        errorcode = getattr(driver, "sqlite_errorcode", None)
        if isinstance(errorcode, int):
            return errorcode & 0xFF == SQLITE_BUSY  # extended codes: SQLITE_BUSY_*
        return "database is locked" in str(driver)
    return False


def database_unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """The 503 refusal for `error` when it means the database cannot be reached now
    (connection refused or lost, server gone away or shutting down, no pooled connection
    or no connection within the timeouts, SQLite locked beyond its busy timeout); None for
    every other error (a constraint, a syntax error, a bug), which stays what it is."""
    if isinstance(error, DatabaseUnavailable):
        return error
    return DatabaseUnavailable() if _is_unavailable(error) else None
