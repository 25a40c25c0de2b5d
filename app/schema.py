"""Schema management: extensions, Alembic upgrade/downgrade, backup and restore (no Flask needed)."""
import shutil
import subprocess
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
EXTENSIONS = ("postgis", "pg_trgm")


class SchemaError(RuntimeError):
    pass


def alembic_config(url):
    cfg = AlembicConfig(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def ensure_extensions(url):
    """Create PostGIS and pg_trgm when allowed; otherwise say exactly what a superuser must run."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            have = set(conn.scalars(text("SELECT extname FROM pg_extension")))
            missing = [name for name in EXTENSIONS if name not in have]
            for name in missing:
                conn.execute(text(f'CREATE EXTENSION IF NOT EXISTS "{name}"'))
            conn.commit()
    except DBAPIError as exc:
        database = make_url(url).database
        statements = " ".join(f"CREATE EXTENSION {name};" for name in EXTENSIONS)
        raise SchemaError(
            f"cannot create the PostGIS/pg_trgm extensions in database {database!r} "
            f"({str(exc.orig).strip().splitlines()[0]}).\nAsk a superuser to run, in that database:\n"
            f"  {statements}") from None
    finally:
        engine.dispose()


def upgrade(url, revision="heads"):
    ensure_extensions(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url, revision):
    command.downgrade(alembic_config(url), revision)


def current(url):
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            if not exists:
                return None
            heads = sorted(conn.scalars(text("SELECT version_num FROM alembic_version")))
            return ", ".join(heads) or None
    finally:
        engine.dispose()


def _libpq_args(url):
    u = make_url(url)
    args = ["-d", u.database or "postgres"]
    host = u.query.get("host") or u.host
    if host:
        args += ["-h", host]
    if u.port:
        args += ["-p", str(u.port)]
    if u.username:
        args += ["-U", u.username]
    env = {"PGPASSWORD": u.password} if u.password else {}
    return args, env


def _tool(name):
    from app import localdb
    for candidate in (localdb.bindir() / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise SchemaError(f"{name} not found; install postgresql-client")


def backup(url, path):
    """pg_dump in custom format (restorable with `pin311 db restore`)."""
    import os
    args, env = _libpq_args(url)
    result = subprocess.run([_tool("pg_dump"), "-Fc", "-f", str(path), *args],
                            capture_output=True, text=True, env={**os.environ, **env})
    if result.returncode != 0:
        raise SchemaError(f"pg_dump failed: {result.stderr.strip()}")
    return Path(path).stat().st_size


def restore(url, path):
    """Restore a custom-format dump over the database (objects are dropped and recreated)."""
    import os
    if not Path(path).is_file():
        raise SchemaError(f"no such backup file: {path}")
    args, env = _libpq_args(url)
    result = subprocess.run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
                             *args, str(path)], capture_output=True, text=True, env={**os.environ, **env})
    if result.returncode != 0:
        raise SchemaError(f"pg_restore failed: {result.stderr.strip()}")
