"""`pin311 serve`: run the web app under gunicorn."""
import errno
import os
import socket
import sys

import click

from gis.errors import InvalidInput

# gunicorn's default line has the query string and the referrer, which carry callers' phone numbers
# (/agent/call?from=+1617…, /agent/callers?phone=…): the log gets the path only, and no referrer.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'
WORKERS, THREADS = 2, 16


def gunicorn_argv(host, port, workers, threads, access_log=True):
    """The gunicorn command line we serve with (the HTTP benchmark runs the same, without the access log).

    --reuse-port: every worker listens on a socket of its own and the kernel spreads new connections
    over them. With one shared socket, whichever worker wakes first takes a burst of connections, and
    keep-alive keeps them there: a load of 16 connections opened at once (wrk; a proxy's upstream pool)
    was seen split 16/0 and 15/1, so one worker's interpreter lock did all the work while a core idled.

    --http-parser fast: gunicorn's C parser (gunicorn-h1c, picohttpparser) reads the request head; its Python
    parser cost ~0.1 ms of a worker's CPU per request (HTTP intake: 780 → 860 req/s, 7 of 8 alternating pairs,
    2026-12-08). "fast", not "auto": a missing parser stops the server rather than slowing it unseen."""
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
            "--threads", str(threads), "--worker-class", "gthread", "--reuse-port", "--http-parser", "fast",
            "--timeout", "60", "--graceful-timeout", "5"]
    if access_log:
        argv += ["--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT]
    return argv + ["wsgi:app"]


def server_settings(threads):
    """The settings a server of `threads` threads a worker needs, as environment defaults (an operator's own
    values win; the HTTP benchmark runs with the same)."""
    return {
        # Live streams (one per open console) may take half the threads; the rest always serve requests.
        "PIN311_LIVE_STREAMS": str(max(1, threads // 2)),
        # A pooled connection kept for every thread. SQLAlchemy's pool closes a connection past pool_size
        # when it comes back: with the default 5 and 16 threads, each request past the fifth in flight in a
        # worker started a new PostgreSQL session (135 in a 10 s benchmark run, p99 190 ms against 47 ms).
        "PIN311_DB_POOL_SIZE": str(threads),
    }


def check_port_free(host, port):
    """Refuse a port something already listens on. With SO_REUSEPORT a second `pin311 serve` (or any
    program that sets it) would otherwise share the port silently and take half the connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as gunicorn: TIME_WAIT is no user
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = ("something already listens there: stop it or choose another --port"
                   if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
            raise InvalidInput(f"cannot serve on {host}:{port}: {why}") from None


@click.command("serve")
@click.option("--host", default=lambda: os.environ.get("PIN311_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PIN311_PORT", "5000")), type=int,
              show_default="5000")
@click.option("--workers", default=WORKERS, show_default=True)
@click.option("--threads", default=THREADS, show_default=True,
              help="threads per worker; open agent consoles' live streams may hold up to half of them")
def group(host, port, workers, threads):
    """Serve the app on HOST:PORT (gunicorn, threaded workers)."""
    check_port_free(host, port)
    click.echo(f"pin311 on http://{host}:{port}/  (Ctrl-C to stop)")
    for name, value in server_settings(threads).items():
        os.environ.setdefault(name, value)
    argv = gunicorn_argv(host, port, workers, threads)
    os.execv(argv[0], argv)
