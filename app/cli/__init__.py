"""The `pin311` command line. Each group lives in its own module and is registered here."""
import sys

import click

from app.config import ConfigError
from gis.errors import Pin311Error


# Each feature's commands live in app/cli/<name>.py as `group`; they are imported only when used, so a
# command pays for its own imports and not for every other one's (geopandas, arcgis …): ~1 s saved.
COMMANDS = ("db", "demo", "layers", "serve", "geocode", "locate", "requests", "apikeys", "users", "worker",
            "arcgis")


class Pin311Group(click.Group):
    """Loads commands lazily and turns the errors a user can cause into one clear line, never a traceback."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import importlib
        return importlib.import_module(f"app.cli.{name}").group

    def invoke(self, ctx):
        from app.localdb import ClusterError
        from app.schema import SchemaError
        from sqlalchemy.exc import OperationalError
        try:
            return super().invoke(ctx)
        except (ConfigError, ClusterError, SchemaError, Pin311Error) as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except OperationalError as exc:
            click.secho(f"error: cannot reach the database: {str(exc.orig).strip().splitlines()[0]}\n"
                        "  (is it running? `pin311 db start`; or check DATABASE_URL)", fg="red", err=True)
            sys.exit(1)


@click.group(cls=Pin311Group)
def main():
    """pin311: a GIS-centric 311 service-request system."""
