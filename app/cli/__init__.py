"""The `pin311` command line. Each group lives in its own module and is registered here."""
import sys

import click

from app.config import ConfigError
from gis.errors import Pin311Error


class Pin311Group(click.Group):
    """Turns the errors a user can cause into one clear line and exit code 1, never a traceback."""

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


def _register():
    # Each feature's module exposes `group`; a feature not built yet is simply absent.
    import importlib
    for name in ("db", "demo", "layers", "serve", "geocode", "locate", "requests", "apikeys", "users",
                 "worker", "arcgis"):
        try:
            module = importlib.import_module(f"app.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"app.cli.{name}":
                raise
            continue
        main.add_command(module.group)


_register()
