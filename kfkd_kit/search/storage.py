"""Where tune's study lives: an Optuna storage from a URL (SQLite file by default, any RDB
URL, or ``journal:PATH``), opened so that several workers can start at once, with one-line
errors for a missing driver or a server that cannot be reached (the password never shown).
study.py's docstring says which storage suits which use."""
from __future__ import annotations

import warnings
from pathlib import Path

# the Python driver each RDB backend needs, and where to get it (what the error names)
DRIVERS = {"postgresql": "pip install psycopg2-binary (pinned in requirements.txt), for "
                         "postgresql:// or postgresql+psycopg2://",
           "mysql": "pip install PyMySQL and give mysql+pymysql://..."}
CONNECT_TIMEOUT_S = 10    # a server that does not answer: an error after this, not a hang
SETUP_TRIES = 5           # workers creating the same tables at once: the losers try again


def _one_line(exc, secret=None) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.replace(secret, "***") if secret else first


def _other_postgresql_driver(parsed):
    """``postgresql://`` names no driver, and SQLAlchemy 2.1 then takes psycopg (3); where
    only psycopg2 (requirements.txt's) is installed, the URL with that one, else None."""
    if parsed.drivername != "postgresql":
        return None
    other = parsed.set(drivername="postgresql+psycopg2")
    try:
        other.get_dialect().import_dbapi()
    except ImportError:
        return None
    return other


def _open_rdb(url, parsed):
    """Optuna's RDBStorage on ``url``; its tables created once however many workers start
    together (PostgreSQL's CREATE TABLE is not atomic against a concurrent one: the worker
    that loses gets a duplicate-key error and tries again, finding the tables made)."""
    import random
    import time

    import optuna
    import sqlalchemy
    kwargs = {}
    if parsed.get_backend_name() == "postgresql" \
            and parsed.get_driver_name() in ("psycopg2", "psycopg") \
            and "connect_timeout" not in parsed.query:
        kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    for attempt in range(1, SETUP_TRIES + 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == SETUP_TRIES:
                raise
            time.sleep(0.2 + random.random())    # not seeded: timing only


def open_storage(url=None, default=Path("cv/tune-net8.db")):
    """(Optuna storage, its URL as shown) for ``--storage``: None (an SQLite file at
    ``default``), an RDB URL, or ``journal:PATH``. Anything else, a missing database driver
    or a server that cannot be reached is a one-line ValueError naming the URL without
    its password."""
    import optuna  # noqa: F401  (its storages)
    if url is None:
        default = Path(default)
        default.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{default}"
    url = str(url)
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        if not path.strip():
            raise ValueError("--storage journal:PATH needs the journal file's path")
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(path)), url
        except OSError as exc:
            raise ValueError(f"--storage {url}: {exc}") from None
    unknown = (f"--storage {url!r}: not a storage; give an RDB URL (sqlite:///cv/tune.db, "
               "postgresql://user@host/db, ...) or journal:PATH")
    if "://" not in url:
        raise ValueError(unknown)
    import sqlalchemy
    try:
        parsed = sqlalchemy.engine.make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        dialect = parsed.get_dialect()
    except (sqlalchemy.exc.NoSuchModuleError, sqlalchemy.exc.ArgumentError):
        raise ValueError(unknown) from None
    except ImportError as exc:
        raise ValueError(f"--storage {url.split(':', 1)[0]}: its database driver is not "
                         f"installed ({exc})") from None
    secret = parsed.password or None
    backend = parsed.get_backend_name()
    try:
        dialect.import_dbapi()                  # the driver, before anything connects
    except ImportError as exc:
        parsed = _other_postgresql_driver(parsed)
        if parsed is None:
            missing = ("neither psycopg nor psycopg2 can be imported" if backend == "postgresql"
                       and "+" not in url.split("://", 1)[0] else _one_line(exc, secret))
            install = DRIVERS.get(backend, f"install the Python driver for {backend}")
            raise ValueError(f"--storage {shown}: its database driver is not installed "
                             f"({missing}): {install}") from None
        url = parsed.render_as_string(hide_password=False)
    try:
        return _open_rdb(url, parsed), shown
    except sqlalchemy.exc.OperationalError as exc:
        if backend == "sqlite":
            raise ValueError(f"--storage {shown}: cannot open it ({_one_line(exc)})") from None
        raise ValueError(f"--storage {shown}: cannot reach the database "
                         f"({_one_line(exc, secret)}); is the server running there, and "
                         "does the database exist?") from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        raise ValueError(f"--storage {shown}: cannot open it ({_one_line(exc, secret)})") from None
