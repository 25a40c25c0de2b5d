"""`pin311 arcgis publish | sync | status`: ArcGIS Online / Enterprise items kept current from the outbox."""
import json
import time

import click

from app.config import database_url
from gis import arcgis_connect, arcgis_sync
from gis.db import engine_for


@click.group("arcgis")
def group():
    """Publish requests, district layers, a Web Map and a Dashboard to ArcGIS; keep them current.

    Needs PIN311_ARCGIS_URL and PIN311_ARCGIS_API_KEY, or PIN311_ARCGIS_CLIENT_ID and
    PIN311_ARCGIS_CLIENT_SECRET, or PIN311_ARCGIS_USERNAME and PIN311_ARCGIS_PASSWORD.
    """


@group.command("publish")
def publish():
    """Create (or find and reuse) the items and load them in full."""
    from gis.arcgis_publish import publish as run
    s = arcgis_connect.settings()
    gis = arcgis_connect.connect()
    summary = run(engine_for(database_url()), gis, s["url"])
    for key, value in summary.items():
        if isinstance(value, dict):
            click.echo(f"{key}: {value['added']} added, {value['updated']} updated, "
                       f"{value['deleted']} deleted")
        else:
            click.echo(f"{key}: {value}")


@group.command("sync")
@click.option("--follow", is_flag=True, help="keep running: poll the outbox every --interval seconds")
@click.option("--interval", default=2.0, show_default=True, help="seconds between polls when idle")
def sync(follow, interval):
    """Send pending request changes to the hosted requests layer (the outbox topic `publish`)."""
    engine = engine_for(database_url())
    arcgis_connect.settings()          # fail now, clearly, if ArcGIS is not configured
    while True:
        sent = arcgis_sync.drain(engine)
        if sent:
            click.echo(f"sent {sent} changes")
        if not follow:
            break
        time.sleep(interval)
    with engine.connect() as conn:
        st = arcgis_sync.status(conn)
    if st["backlog"]:
        click.echo(f"{st['backlog']} changes still pending "
                   f"(next try {st['next_try']}; {st['last_error'] or ''})")


@group.command("status")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status(as_json):
    """Backlog, lag and the last error of the ArcGIS sync; the published items."""
    with engine_for(database_url()).connect() as conn:
        st = arcgis_sync.status(conn)
    if as_json:
        click.echo(json.dumps(st, default=str, indent=2))
        return
    click.echo(f"backlog: {st['backlog']} changes ({st['failing']} retried)")
    click.echo(f"lag: {st['lag_seconds']:.0f} s (oldest pending change {st['oldest_pending'] or '-'})")
    click.echo(f"last sent: {st['last_sent'] or 'never'}; next try: {st['next_try'] or '-'}")
    if st["last_error"]:
        click.echo(f"last error: {st['last_error']}")
    for item in st["items"]:
        click.echo(f"{item['key']}: {item['title']} ({item['item_id']}) {item['url'] or ''}")
