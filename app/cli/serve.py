"""`pin311 serve`: run the web app under gunicorn."""
import os
import sys

import click


# gunicorn's default line has the query string and the referrer, which carry callers' phone numbers
# (/agent/call?from=+1617…, /agent/callers?phone=…): the log gets the path only, and no referrer.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'


@click.command("serve")
@click.option("--host", default=lambda: os.environ.get("PIN311_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PIN311_PORT", "5000")), type=int,
              show_default="5000")
@click.option("--workers", default=2, show_default=True)
@click.option("--threads", default=16, show_default=True,
              help="threads per worker; open agent consoles' live streams may hold up to half of them")
def group(host, port, workers, threads):
    """Serve the app on HOST:PORT (gunicorn, threaded workers)."""
    click.echo(f"pin311 on http://{host}:{port}/  (Ctrl-C to stop)")
    # Live streams (one per open console) may take half the threads; the rest always serve requests.
    os.environ.setdefault("PIN311_LIVE_STREAMS", str(max(1, threads // 2)))
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
                              "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
                              "--timeout", "60", "--graceful-timeout", "5", "--access-logfile", "-",
                              "--access-logformat", ACCESS_LOG_FORMAT,
                              "wsgi:app"])
