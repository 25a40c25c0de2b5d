"""`pin311 requests import FILE [--format boston-csv|open311-json] [--service CODE]`: load past requests."""
import time
from pathlib import Path

import click

from app.config import database_url
from gis import bulk, bulk_files, bulk_indexes
from gis.db import engine_for
from gis.errors import InvalidInput


def _guess_format(path):
    name = Path(path).name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")):
        return "open311-json"
    if name.endswith((".csv", ".csv.gz")):
        return "boston-csv"
    raise InvalidInput(f"cannot tell the format of {path} from its name: give --format "
                       f"({' or '.join(bulk_files.FORMATS)})")


@click.group("requests")
def group():
    """Service requests: bulk import of past requests."""


@group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(bulk_files.FORMATS), help="default: from the file name")
@click.option("--service", "service_code", help="file every row under this service code")
@click.option("--rebuild-indexes", "rebuild", type=click.Choice(bulk_indexes.MODES), default="auto",
              show_default=True,
              help="load with the tables' indexes, keys and foreign keys dropped and made again before "
                   "commit (yes), with them live (no), or decide by size (auto)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def import_(path, fmt, service_code, rebuild, quiet):
    """Load FILE (Boston 311 CSV or Open311 GeoReport v2 JSON lines, optionally gzipped).

    Rows are de-duplicated by id (a re-run adds nothing), located and routed set-based; the whole
    file is loaded or nothing is. Prints how many rows were loaded and how many were refused, and why.

    \b
    A large load (--rebuild-indexes auto: at least 10,000 rows and at least as many as service_requests
    already holds, e.g. the first migration from the old CRM; or --rebuild-indexes yes) locks
    service_requests and request_events (and the tables their foreign keys join: services, crews,
    contacts, sweeps, notifications), drops their indexes, keys and foreign keys, loads, and makes them
    again from the database's own definitions before committing, all in the one transaction: faster, but
    intake, the map, the catalogue and every other reader of those tables wait for the load to finish
    (web requests give up after their 5 s timeout). A failure rolls everything back, indexes included.
    'auto' loads with live indexes when the tables stay busy for a second; --rebuild-indexes no always
    does, and the tables stay in use throughout.
    """
    started = time.perf_counter()
    report = bulk.import_requests(engine_for(database_url()), path, fmt or _guess_format(path),
                                  service_code=service_code, progress=not quiet, rebuild_indexes=rebuild)
    elapsed = time.perf_counter() - started
    click.echo(report.summary())
    click.echo(f"{report.read:,} rows in {elapsed:.2f} s ({report.read / elapsed if elapsed else 0:,.0f} requests/s)")
