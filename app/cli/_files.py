"""Reading and writing the CSV files the batch commands (geocode, locate) take and give back."""
import csv
import sys

import click

from gis.errors import InvalidInput


def read_rows(path, needed, adds):
    """(header, rows) of a CSV file; refuses a file without the needed columns or that already has ours."""
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"cannot read {path} as CSV: {exc}") from None
    if not header:
        raise InvalidInput(f"{path} is empty: a CSV with a header row is needed")
    missing = [c for c in needed if c not in header]
    if missing:
        raise InvalidInput(f"{path} has no column {', '.join(map(repr, missing))} "
                           f"(its columns: {', '.join(header[:20])})")
    clash = [c for c in adds if c in header]
    if clash:
        raise InvalidInput(f"{path} already has the column(s) {', '.join(map(repr, clash))} this command adds; "
                           "rename them first")
    width = len(header)
    if any(len(r) != width for r in rows):   # ragged rows: pad or cut to the header, as spreadsheets do
        rows = [r + [""] * (width - len(r)) if len(r) < width else r[:width] for r in rows]
    return header, rows


def write_rows(path, header, rows, extra=None):
    """Write header and rows; `extra` (a list of equal-length columns) is appended to each row."""
    if extra:
        rows = map(list.__add__, rows, map(list, zip(*extra)))
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc}") from None


def echo_summary(title, counts, total, seconds, unit):
    rate = total / seconds if seconds > 0 else float("inf")
    click.echo(f"{title}: {total:,} rows in {seconds:.2f} s ({rate:,.0f} {unit}/s)")
    for key, n in counts:
        share = 100.0 * n / total if total else 0.0
        click.echo(f"  {key:<14} {n:>9,}  {share:5.1f} %")
