"""`pin311 apikeys …`: keys for Open311 clients and the JSON API."""
import click

from app.config import database_url
from gis import apikeys
from gis.db import engine_for


@click.group("apikeys")
def group():
    """Create, list and revoke API keys."""


@group.command()
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, default=["open311:write"], show_default=True,
              type=click.Choice(apikeys.SCOPES))
def create(name, scopes):
    """Create a key for NAME (an app or partner); the key is printed once."""
    with engine_for(database_url()).begin() as conn:
        key_id, key = apikeys.create(conn, name, scopes)
    click.echo(f"api key {key_id} for {name!r} ({', '.join(scopes)}):\n{key}\nStore it now: it is not shown again.")


@group.command("list")
def list_():
    """List keys (never the keys themselves)."""
    with engine_for(database_url()).connect() as conn:
        for k in apikeys.list_keys(conn):
            state = f"revoked {k['revoked_at']:%Y-%m-%d}" if k["revoked_at"] else "active"
            click.echo(f"{k['id']:>4}  {k['prefix']}…  {k['name']:<30} {','.join(k['scopes']):<28} {state}")


@group.command()
@click.argument("key_id", type=int)
def revoke(key_id):
    """Revoke key KEY_ID at once."""
    with engine_for(database_url()).begin() as conn:
        apikeys.revoke(conn, key_id)
    click.echo(f"api key {key_id} revoked")
