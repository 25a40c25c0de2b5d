"""`pin311 worker`: drain the outbox — caller notifications, and ArcGIS sync when ArcGIS is configured."""
import time

import click

from app.config import database_url
from gis import notify
from gis.db import engine_for


def _arcgis_configured():
    import os
    return bool(os.environ.get("PIN311_ARCGIS_URL"))


@click.command("worker")
@click.option("--once", is_flag=True, help="drain what is due, then exit")
@click.option("--interval", default=1.0, show_default=True, help="seconds between polls when idle")
def group(once, interval):
    """Deliver status updates (SMS, e-mail) and publish changes, with retries and back-off."""
    engine = engine_for(database_url())
    senders = notify.senders_from_env()
    click.echo(f"worker: notifying by {', '.join(senders) or 'no channel configured (deliveries wait until one is)'}"
               f"{'; publishing to ArcGIS' if _arcgis_configured() else ''}")
    while True:
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
