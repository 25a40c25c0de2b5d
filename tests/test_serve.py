"""`pin311 serve`: every worker listens on its own socket, a port already taken is refused, the pool fits the
threads, and the access log keeps no phone numbers."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

PIN311 = str(Path(sys.executable).parent / "pin311")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db_url, port, workers):
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "x" * 32}
    return subprocess.Popen([PIN311, "serve", "--port", str(port), "--workers", str(workers), "--threads", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_up(port):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except (requests.ConnectionError, requests.Timeout):   # a worker still loading the app: its
            time.sleep(0.3)                                    # socket holds the connection till then
    raise AssertionError("pin311 serve did not come up")


@pytest.mark.skipif(not shutil.which("ss"), reason="needs `ss` (iproute2) to list listening sockets")
def test_each_worker_listens_on_its_own_socket_and_a_taken_port_is_refused(db_url):
    """With one socket shared by the workers, a burst of keep-alive connections (wrk, a proxy's upstream
    pool) all went to whichever worker woke first. With a socket per worker (SO_REUSEPORT) the kernel
    spreads them. SO_REUSEPORT would also let a second server bind the same port without an error, so
    `pin311 serve` checks first."""
    port = _free_port()
    server = _serve(db_url, port, workers=2)
    try:
        assert _wait_up(port).status_code == 200
        deadline = time.monotonic() + 30
        while True:     # the second worker may still be booting
            listening = subprocess.run(["ss", "-tlnpH", f"( sport = :{port} )"], capture_output=True,
                                       text=True).stdout
            owners = set(re.findall(r"pid=(\d+),", listening))
            if len(owners) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert len(listening.strip().splitlines()) == 2, listening
        assert len(owners) == 2, listening
        assert str(server.pid) not in owners          # the workers listen, not the master

        second = subprocess.run([PIN311, "serve", "--port", str(port)], capture_output=True, text=True,
                                timeout=60, env={**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "x" * 32})
        assert second.returncode != 0
        assert f"cannot serve on 127.0.0.1:{port}: something already listens there" in second.stderr + second.stdout
        assert "Traceback" not in second.stderr + second.stdout
        assert _wait_up(port).status_code == 200     # the first server is untouched
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_serve_keeps_a_database_connection_for_every_thread(monkeypatch):
    """SQLAlchemy's pool closes a connection past pool_size when it is returned, so with the default 5 and
    serve's 16 threads every request past the fifth in flight opened a PostgreSQL session of its own. serve
    sizes the pool by its threads (and live streams by half of them); an operator's own values win."""
    from click.testing import CliRunner

    from app.cli import serve
    ran = []
    monkeypatch.setattr(serve.os, "execv", lambda path, argv: ran.append(argv))
    for given, threads, pool, streams in (({}, 8, "8", "4"), ({}, 16, "16", "8"),
                                          ({"PIN311_DB_POOL_SIZE": "3"}, 8, "3", "4")):
        env = {k: v for k, v in os.environ.items() if k not in ("PIN311_DB_POOL_SIZE", "PIN311_LIVE_STREAMS")}
        monkeypatch.setattr(serve.os, "environ", {**env, **given})
        result = CliRunner().invoke(serve.group, ["--port", str(_free_port()), "--threads", str(threads)])
        assert result.exit_code == 0, result.output
        assert serve.os.environ["PIN311_DB_POOL_SIZE"] == pool
        assert serve.os.environ["PIN311_LIVE_STREAMS"] == streams
        assert ran[-1][ran[-1].index("--threads") + 1] == str(threads)


def test_the_access_log_keeps_no_callers_phone_numbers(db_url):
    """The console's screen-pop and caller look-up carry the phone in the query string (and then in the
    referrer of what follows); `pin311 serve` logs the path only."""
    port = _free_port()
    server = _serve(db_url, port, workers=1)
    try:
        _wait_up(port)
        answer = requests.get(f"http://127.0.0.1:{port}/agent/call?from=%2B16175550142", timeout=10,
                              allow_redirects=False,
                              headers={"Referer": f"http://127.0.0.1:{port}/agent/callers?phone=6175550142"})
        assert answer.status_code in (302, 401, 403)
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "GET /agent/call " in log                     # the request is logged …
    assert "6175550142" not in log                       # … without the number, from the URL or the referrer
