"""One cached SQLAlchemy engine per database URL (pygeoapi's pattern), shared by the app and the CLI."""
from functools import lru_cache

from sqlalchemy import create_engine


@lru_cache(maxsize=8)
def engine_for(url, statement_timeout_ms=5000, pool_size=5):
    """An engine whose connections are checked before use and whose statements time out.

    pre-ping turns a database restart into one reconnect instead of an error per pooled connection;
    the statement timeout keeps a stuck query from holding a web worker forever.
    """
    options = f"-c statement_timeout={int(statement_timeout_ms)} -c lock_timeout={int(statement_timeout_ms)}"
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"connect_timeout": 3, "options": options, "application_name": "pin311"},
        future=True,
    )
