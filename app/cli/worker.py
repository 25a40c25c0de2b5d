"""`pin311 worker`: drain the outbox — caller notifications, and ArcGIS sync when ArcGIS is configured —
and, about once an hour, delete what is kept only for a while (gis/housekeeping.py)."""
import time

import click
from sqlalchemy.exc import DBAPIError

from app.config import database_url
from gis import housekeeping, notify, site
from gis.db import engine_for


PRUNE_SECONDS = 3600


def _arcgis_configured():
    import os
    return bool(os.environ.get("PIN311_ARCGIS_URL"))


@click.command("worker")
@click.option("--once", is_flag=True, help="drain what is due, then exit")
@click.option("--interval", default=1.0, show_default=True, help="seconds between polls when idle")
def group(once, interval):
    """Deliver status updates (SMS, e-mail) and publish changes, with retries and back-off."""
    try:
        site.public_url()     # e-mails link to it: refuse a malformed address now, not one e-mail at a time
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    engine = engine_for(database_url())
    senders = notify.senders_from_env()
    click.echo(f"worker: notifying by {', '.join(senders) or 'no channel configured (deliveries wait until one is)'}"
               f"{'; publishing to ArcGIS' if _arcgis_configured() else ''}")
    pruned_at = None
    while True:
        if pruned_at is None or time.monotonic() - pruned_at > PRUNE_SECONDS:
            pruned_at = time.monotonic()
            try:
                with engine.begin() as conn:
                    gone = housekeeping.prune(conn)
            except DBAPIError as exc:      # housekeeping can wait an hour; deliveries must not
                click.echo(f"worker: housekeeping postponed ({type(exc).__name__})", err=True)
            else:
                if any(gone.values()):
                    click.echo(f"worker: deleted {gone['sessions']} old staff sessions, "
                               f"{gone['outbox']} old outbox rows")
        done = notify.run_once(engine, senders)
        if _arcgis_configured():
            from gis import arcgis_sync
            done += arcgis_sync.drain(engine, max_batches=1)
        if done:
            click.echo(f"worker: {done} outbox rows done")
        elif once:
            return
        else:
            time.sleep(interval)
