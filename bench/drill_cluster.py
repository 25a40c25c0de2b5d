"""The fault drill's own PostgreSQL cluster and the processes it starts and kills (bench/drill.py)."""
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"


class Cluster:
    """A PostgreSQL cluster of its own in /var/tmp, on its own Unix socket (no TCP), run by the `postgres`
    user when we are root: restarting or stopping it disturbs no one else's database."""

    def __init__(self):
        from app import localdb
        self.localdb = localdb
        self.base = Path(tempfile.mkdtemp(prefix="pin311-drill-", dir="/var/tmp"))
        self.data = self.base / "data"
        self.sock = self.base
        self.log = self.base / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *args):
        result = self.localdb._as_owner([str(self.localdb.bindir() / args[0]), *args[1:]])
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def init(self):
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        with open(self.data / "postgresql.auto.conf", "a") as fh:
            fh.write(f"listen_addresses = ''\nunix_socket_directories = '{self.sock}'\nmax_connections = 100\n"
                     "fsync = on\nsynchronous_commit = on\nshared_buffers = '64MB'\n")
        self.start()

    def start(self):
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log))

    def restart_fast(self):
        self._run("pg_ctl", "restart", "-w", "-m", "fast", "-t", "60", "-D", str(self.data), "-l", str(self.log))

    def stop(self):
        try:
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        except RuntimeError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, db="drill"):
        return f"postgresql+psycopg2://postgres@/{db}?host={self.sock}"

    def libpq(self, db="drill"):
        return ["-h", str(self.sock), "-U", "postgres", "-d", db]

    def clone_from(self, source_url):
        """Schema + reference data of the dev database; no requests, events, contacts or outbox."""
        from sqlalchemy.engine import make_url
        src = make_url(source_url)
        host = src.query.get("host") or src.host
        bindir = self.localdb.bindir()
        self._run("createdb", *self.libpq("postgres")[:4], "drill")
        dump = subprocess.Popen(
            [str(bindir / "pg_dump"), "-Fc", "-h", str(host), "-U", src.username or "postgres",
             "-d", src.database, *[f"--exclude-table-data={t}" for t in
                                   ("service_requests", "request_events", "contacts", "outbox", "api_keys",
                                    "arcgis_items")]], stdout=subprocess.PIPE)
        restore = subprocess.run([str(bindir / "pg_restore"), "--no-owner", *self.libpq()],
                                 stdin=dump.stdout, capture_output=True, text=True)
        dump.wait()
        if dump.returncode != 0:
            raise RuntimeError("pg_dump of the dev database failed")
        if restore.returncode not in (0, 1):  # 1: warnings (e.g. extension comments)
            raise RuntimeError(f"pg_restore failed: {restore.stderr[-2000:]}")


def wait_ready(base, key, timeout=60):
    import requests
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(f"{base}/api/v1/services", headers={"X-Api-Key": key}, timeout=3).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.3)
    return False


def has_worker_command():
    return (ROOT / "app" / "cli" / "worker.py").exists()


def start_worker(env, log):
    return subprocess.Popen([str(BIN / "pin311"), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
