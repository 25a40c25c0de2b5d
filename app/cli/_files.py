"""Reading and writing the CSV files the batch commands (geocode, locate) take and give back.

`pin311 locate`'s files (a million rows) are read and written as columns: one pyarrow string array per
column, by pyarrow's C++ reader and text kernels, ~0.3 s where Python's csv module took ~2.5 s. Every
value stays the text it was ("007" stays "007", nothing is typed), and what is written is what csv.writer
wrote, byte for byte: quotes only where a value needs them, \r\n line ends. A file pyarrow's reader
cannot read as csv.reader does (ragged rows, bytes that are not UTF-8, a row over its 1 MB block …) is
read by the csv module, as before: the answers are the same either way (tests/test_cli_csv_files.py).
`pin311 geocode`'s files are small and go by rows through the csv module alone: importing pyarrow's
compute kernels would cost it ~0.1 s, more than the csv module spends on its rows; pyarrow is therefore
imported inside the column functions only.
"""
import csv
import io
import sys

import click

from gis.errors import InvalidInput

CHUNK = 100_000             # rows turned into one piece of output text at a time
SPECIAL = (b'"', b",", b"\r", b"\n")    # csv.writer (excel dialect) quotes a value holding one of these


def read_rows(path, needed, adds):
    """(header, rows as lists of str) of a CSV file, ragged rows padded or cut to the header; refuses a
    file without the needed columns or that already has ours."""
    header, rows = _read_csv(path)
    return _checked(path, header, needed, adds), rows


def write_rows(path, header, rows):
    """Write header and rows (lists of str) with csv.writer."""
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc}") from None


def read_columns(path, needed, adds):
    """read_rows, as one pyarrow string array per column."""
    import pyarrow as pa
    found = _read_arrow(path)
    if found is None:
        header, rows = _read_csv(path)
        columns = zip(*rows) if rows else [[]] * len(header)
        found = header, [pa.array(c, pa.string()) for c in columns]
    header, columns = found
    return _checked(path, header, needed, adds), columns


def write_columns(path, header, columns):
    """Write header and columns (pyarrow string arrays of one length) as csv.writer writes them; null is ''."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def text(value):
        return pa.scalar(value, pa.large_string())
    head = io.StringIO()
    csv.writer(head).writerow(header)
    texts = [_csv_text(c.fill_null("") if c.null_count else c, alone=len(columns) == 1) for c in columns]
    try:
        with open(path, "wb") as f:
            f.write(head.getvalue().encode("utf-8"))
            for start in range(0, len(columns[0]), CHUNK):
                part = [t.slice(start, CHUNK).cast(pa.large_string()) for t in texts]   # a chunk may pass 2 GB
                part[-1] = pc.binary_join_element_wise(part[-1], text("\r\n"), text(""))
                f.write(_bytes(pc.binary_join_element_wise(*part, text(","))))
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc}") from None


def _checked(path, header, needed, adds):
    missing = [c for c in needed if c not in header]
    if missing:
        raise InvalidInput(f"{path} has no column {', '.join(map(repr, missing))} "
                           f"(its columns: {', '.join(header[:20])})")
    clash = [c for c in adds if c in header]
    if clash:
        raise InvalidInput(f"{path} already has the column(s) {', '.join(map(repr, clash))} this command adds; "
                           "rename them first")
    return header


def _read_csv(path):
    """(header, rows) by the csv module: any file csv.reader reads, ragged rows padded or cut to the header."""
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
    width = len(header)
    if any(len(r) != width for r in rows):   # ragged rows: pad or cut to the header, as spreadsheets do
        rows = [r + [""] * (width - len(r)) if len(r) < width else r[:width] for r in rows]
    return header, rows


def _read_arrow(path):
    """(header, columns) by pyarrow's reader, or None when it cannot read the file as csv.reader would."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)     # the width, which pyarrow needs to read every column as text
        if not header:
            return None
        names = [f"c{i}" for i in range(len(header))]
        table = pa_csv.read_csv(
            path, read_options=pa_csv.ReadOptions(column_names=names),   # the header comes back as row 0
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())))
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException):
        return None
    if not table.num_rows or [c[0].as_py() for c in table.columns] != header:
        return None
    return header, [c.slice(1).combine_chunks() for c in table.columns]


def _csv_text(values, alone):
    """The values as csv.writer writes them: "quoted", inner quotes doubled, where they hold a quote, comma
    or line break; and an empty value alone on its row as "" (else the row would be a blank line)."""
    import pyarrow.compute as pc
    if not alone:
        text = bytes(_bytes(values))
        if not any(s in text for s in SPECIAL):    # the usual column: a byte scan (memchr), no regex
            return values
    need = pc.match_substring_regex(values, '[",\r\n]')
    if alone:
        need = pc.or_(need, pc.equal(values, ""))
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(need, quoted, values)


def _bytes(values):
    """The UTF-8 text of a string array's values, one after another (a view, not a copy)."""
    import numpy as np
    import pyarrow as pa
    _, offsets, data = values.buffers()
    if data is None or not len(values):
        return memoryview(b"")
    offsets = np.frombuffer(offsets, np.int64 if pa.types.is_large_string(values.type) else np.int32)
    return memoryview(data)[offsets[values.offset]:offsets[values.offset + len(values)]]


def echo_summary(title, counts, total, seconds, unit):
    rate = total / seconds if seconds > 0 else float("inf")
    click.echo(f"{title}: {total:,} rows in {seconds:.2f} s ({rate:,.0f} {unit}/s)")
    for key, n in counts:
        share = 100.0 * n / total if total else 0.0
        click.echo(f"  {key:<14} {n:>9,}  {share:5.1f} %")
