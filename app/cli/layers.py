"""`pin311 layers …`: import and list spatial layers."""
import click

from app.config import database_url
from gis import layers
from gis.db import engine_for
from gis.models import LAYER_KINDS


@click.group("layers")
def group():
    """Spatial layers: city boundary, districts, parcels, address points."""


@group.command("import")
@click.argument("path")
@click.option("--layer", "name", required=True, help="layer name, e.g. police_districts")
@click.option("--kind", type=click.Choice(LAYER_KINDS), required=True)
@click.option("--code-field", help="field holding the district code / parcel id / full address")
@click.option("--name-field", help="field holding the district's display name")
@click.option("--source-crs", help="the file's real CRS when it is missing or wrong, e.g. EPSG:2249")
def import_(path, name, kind, code_field, name_field, source_crs):
    """Import PATH (any vector file GDAL reads; zips via /vsizip/) as layer NAME, replacing it atomically."""
    report = layers.import_layer(engine_for(database_url()), path, name, kind, code_field, name_field, source_crs)
    click.echo(report.summary())


@group.command("list")
def list_():
    """Show every layer with its feature count, source CRS and load time."""
    with engine_for(database_url()).connect() as conn:
        rows = layers.list_layers(conn)
    if not rows:
        click.echo("no layers loaded (try `pin311 demo load`)")
        return
    click.echo(f"{'layer':<22} {'kind':<9} {'features':>9}  {'source CRS':<11} loaded at")
    for r in rows:
        crs = f"EPSG:{r['source_srid']}" if r["source_srid"] else "?"
        click.echo(f"{r['name']:<22} {r['kind']:<9} {r['feature_count']:>9,}  {crs:<11} "
                   f"{r['loaded_at']:%Y-%m-%d %H:%M:%S %Z}")
