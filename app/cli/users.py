"""`pin311 users create`: staff accounts."""
import click

from app.auth import users
from app.config import database_url
from gis.db import engine_for
from gis.models import ROLES


@click.group("users")
def group():
    """Staff accounts (agent, supervisor, crew, analyst, admin)."""


@group.command()
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", "full_name")
@click.option("--crew", "crews", multiple=True, help="crew code (for role crew); repeatable")
@click.password_option()
def create(username, role, full_name, crews, password):
    """Create or update USERNAME with a password (prompted)."""
    with engine_for(database_url()).begin() as conn:
        users.create(conn, username, password, role, full_name, crews)
    click.echo(f"user {username!r} ({role}) saved")
