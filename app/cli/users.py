"""`pin311 users`: staff accounts, and ending their sessions from the shell."""
import click
from sqlalchemy import text

from app.auth import users
from app.config import database_url
from gis import sessions
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


def _user_id(conn, username):
    found = conn.execute(text("SELECT id FROM users WHERE username = :u"), {"u": username}).scalar()
    if found is None:
        raise click.ClickException(f"no staff account {username!r}")
    return found


@group.command("sign-out")
@click.argument("username")
def sign_out(username):
    """End every session of USERNAME (a lost phone, a shared kiosk): its copied cookies stop working too."""
    with engine_for(database_url()).begin() as conn:
        count = sessions.revoke_all(conn, _user_id(conn, username), "signed out everywhere (command line)")
    click.echo(f"{username!r}: {count} session{'' if count == 1 else 's'} ended")


@group.command()
@click.argument("username")
def deactivate(username):
    """Stop USERNAME from signing in and end its sessions (reactivating revives none)."""
    with engine_for(database_url()).begin() as conn:
        users.set_active(conn, _user_id(conn, username), False)
    click.echo(f"{username!r} deactivated and signed out everywhere")


@group.command()
@click.argument("username")
def reactivate(username):
    """Let USERNAME sign in again (with a new sign-in: earlier sessions stay ended)."""
    with engine_for(database_url()).begin() as conn:
        users.set_active(conn, _user_id(conn, username), True)
    click.echo(f"{username!r} can sign in again")
