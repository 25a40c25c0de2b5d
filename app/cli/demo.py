"""`pin311 demo load`: the demo city from the project's own data/."""
import click

from app.config import database_url, uses_local_cluster
from gis import demo
from gis.db import engine_for


@click.group("demo")
def group():
    """The demo city (Boston, real public data)."""


@group.command()
@click.option("--if-empty", is_flag=True, help="do nothing when the demo city is already loaded")
@click.option("--no-requests", is_flag=True, help="skip the historic requests")
def load(if_empty, no_requests):
    """Load boundaries, districts, parcels, addresses, catalogue, crews, rules and sample requests."""
    engine = engine_for(database_url())
    if if_empty and demo.is_loaded(engine):
        click.echo("demo city already loaded (use `pin311 demo load` to reload it)")
        return
    for line in demo.load(engine, with_requests=not no_requests):
        click.echo(line)
    from app.auth.users import create
    from app.localdb import ROOT
    made = demo.create_staff(engine, create)
    if uses_local_cluster():
        notes = ROOT / "var" / "demo-accounts.txt"
        notes.parent.mkdir(exist_ok=True)
        notes.write_text("".join(f"{u}\t{role}\t{pw}\n" for u, role, pw in made))
        notes.chmod(0o600)
        click.echo("demo staff accounts (passwords also in var/demo-accounts.txt):")
    else:
        # The file holds the checkout's own database's passwords: another database's must not replace them.
        click.echo("demo staff accounts for the database of DATABASE_URL (not saved: note them now):")
    for username, role, password in made:
        click.echo(f"  {username:<16} {role:<10} {password}")
