"""`pin311 db …`: the local cluster and the schema."""
import click

from app import localdb, schema
from app.config import database_url, uses_local_cluster


@click.group("db")
def group():
    """Manage the database: local cluster, migrations, backups."""


def _local_only(action):
    if not uses_local_cluster():
        click.echo(f"DATABASE_URL is set: the database is managed elsewhere, nothing to {action}.")
        return False
    return True


@group.command()
def start():
    """Start the local PostgreSQL + PostGIS cluster (creating it on first use)."""
    if _local_only("start"):
        click.echo(localdb.start())


@group.command()
@click.option("--mode", type=click.Choice(["smart", "fast", "immediate"]), default="fast")
def stop(mode):
    """Stop the local cluster."""
    if _local_only("stop"):
        click.echo(localdb.stop(mode))


@group.command()
def restart():
    """Restart the local cluster (fast shutdown)."""
    if _local_only("restart"):
        click.echo(localdb.restart())


@group.command()
def status():
    """Say whether the local cluster runs, and where."""
    if _local_only("report"):
        click.echo(f"{localdb.status()} ({localdb.cluster_dir()})")


@group.command()
def url():
    """Print the database URL in use."""
    click.echo(database_url())


@group.command()
@click.option("--revision", default="heads", show_default=True)
def upgrade(revision):
    """Apply migrations to the database DATABASE_URL names (or the local cluster)."""
    target = database_url()
    schema.upgrade(target, revision)
    click.echo(f"schema at {schema.current(target)}")


@group.command()
@click.argument("revision")
def downgrade(revision):
    """Undo migrations down to REVISION ('base' for an empty schema)."""
    target = database_url()
    schema.downgrade(target, revision)
    click.echo(f"schema at {schema.current(target) or 'base'}")


@group.command()
@click.argument("path", type=click.Path(dir_okay=False))
def backup(path):
    """Write a pg_dump (custom format) of the database to PATH."""
    size = schema.backup(database_url(), path)
    click.echo(f"backup written to {path} ({size:,} bytes)")


@group.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.confirmation_option(prompt="This replaces the database's contents. Continue?")
def restore(path):
    """Restore a backup made with `pin311 db backup`."""
    schema.restore(database_url(), path)
    click.echo(f"restored {path}")
