"""The batch commands' CSV files (app/cli/_files.py): read by pyarrow and written by its text kernels, with
the answers Python's csv module gave (every value as text, rows padded or cut to the header, the bytes
csv.writer writes); the csv module still reads what pyarrow cannot. Also `pin311 locate`'s reading of
coordinates (app/cli/locate.py _numbers)."""
import csv
import io
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from app.cli import _files
from app.cli._files import read_columns, read_rows, write_columns, write_rows
from app.cli.locate import _numbers
from gis.errors import InvalidInput

TRICKY = ['007', '1.50', '2026-12-07', '1e5', 'NaN', 'null', '', ' ', 'a,b', 'say "hi"', '"', '""', 'two\nlines',
          'cr\r', '\r\n', 'é', '日本', '=SUM(A1)', ' lead', 'trail ', 'x"y', '\t', 'N/A', '-0', 'TRUE']


def csv_module(data):
    """What read_columns gave before pyarrow: csv.reader's rows, padded or cut to the header (None: no header)."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    if not rows or not rows[0]:
        return None
    header, width = rows[0], len(rows[0])
    return header, [r + [""] * (width - len(r)) if len(r) < width else r[:width] for r in rows[1:]]


def csv_writer(header, rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def as_rows(columns):
    return [list(r) for r in zip(*(c.to_pylist() for c in columns))]


@pytest.fixture
def arrow_only(monkeypatch):
    """Fails a read that falls back to the csv module."""
    def refuse(path):
        raise AssertionError(f"{path} was read by the csv module, not pyarrow")
    monkeypatch.setattr(_files, "_read_csv", refuse)


def test_a_file_with_quotes_line_breaks_and_a_bom_is_read_by_pyarrow_as_text(tmp_path, arrow_only):
    rows = [[v, str(i), TRICKY[-1 - i]] for i, v in enumerate(TRICKY)]
    path = tmp_path / "in.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_writer(["id", "lat, y", 'say "x"'], rows))
    header, columns = read_columns(path, ["id"], ["parcel_id"])
    assert header == ["id", "lat, y", 'say "x"'] and as_rows(columns) == rows      # "007" stays "007" …
    assert all(c.type == pa.string() and c.null_count == 0 for c in columns)
    out = tmp_path / "out.csv"
    write_columns(out, header, columns)
    assert out.read_bytes() == csv_writer(header, rows)          # quotes only where needed, \r\n


@pytest.mark.parametrize("data", [
    b"a,b,c\n1,2\n3,4,5,6\n",                    # ragged: padded and cut to the header
    b"a,b\n1,2\n\n3,4\n",                        # a blank line is a row of empty values
    b'a,b\n"open quote,1\n',                     # a quote never closed runs to the end
    b"a,b\r1,2\r3,4",                            # old Mac line ends, no final line end
    b"a,b\n1,\xe9\n",                            # not UTF-8: refused below
    b"",                                         # empty: refused below
    b"\n\na,b\n",                                # a blank first line: no header, refused below
    b"a,b\n",                                    # the header alone
    b"a,a,\n1,2,3\n",                            # repeated and empty names
])
def test_odd_files_read_as_the_csv_module_read_them(tmp_path, data):
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    try:
        want = csv_module(data)
    except UnicodeDecodeError:
        want = None
    if want is None:
        with pytest.raises(InvalidInput) as refused:
            read_columns(path, [], [])
        assert "cannot read" in str(refused.value) or "is empty" in str(refused.value)
        return
    header, columns = read_columns(path, [], [])
    assert (header, as_rows(columns)) == want


def test_random_files_read_and_written_as_by_the_csv_module(tmp_path):
    """Fields of quotes, commas, line breaks (\\n, \\r, \\r\\n), spaces, BOMs, malformed quoting and ragged
    rows: whichever reader takes a file, the columns are csv.reader's, and the bytes written csv.writer's."""
    rng = random.Random(311)
    atoms = ["a", "b c", " ", "", '"', '""', ",", "é", "007", "\n", "\r", "\r\n", 'x"y', "1.5"]
    path, out = tmp_path / "in.csv", tmp_path / "out.csv"
    for _ in range(1500):
        width, eol = rng.randint(1, 3), rng.choice(["\n", "\r\n", "\r"])
        lines = []
        for _ in range(rng.randint(1, 5)):
            fields = []
            for _ in range(width if rng.random() < 0.9 else rng.randint(0, 4)):
                body = "".join(rng.choice(atoms) for _ in range(rng.randint(0, 3)))
                kind = rng.random()
                fields.append(body.translate({ord(c): None for c in '",\r\n'}) if kind < 0.5
                              else '"' + body.replace('"', '""') + '"' if kind < 0.8 else body)
            lines.append(",".join(fields))
        data = (("\ufeff" if rng.random() < 0.1 else "") + eol.join(lines) + rng.choice(["", eol])).encode()
        path.write_bytes(data)
        want = csv_module(data)
        if want is None:
            with pytest.raises(InvalidInput, match="is empty"):
                read_columns(path, [], [])
            continue
        header, columns = read_columns(path, [], [])
        assert (header, as_rows(columns)) == want, data
        write_columns(out, header, columns)
        assert out.read_bytes() == csv_writer(*want), data


def test_columns_are_written_as_csv_writer_writes_them(tmp_path):
    rng = random.Random(4)
    out = tmp_path / "out.csv"
    for width in (1, 2, 5):
        rows = [[rng.choice(TRICKY) for _ in range(width)] for _ in range(300)]
        header = [rng.choice(TRICKY) or "h" for _ in range(width)]
        write_columns(out, header, [pa.array(c, pa.string()) for c in zip(*rows)])
        assert out.read_bytes() == csv_writer(header, rows)
    write_columns(out, ["a", "b"], [pa.array(["1", None]), pa.array([None, "x,y"])])    # null is ''
    assert out.read_bytes() == b'a,b\r\n1,\r\n,"x,y"\r\n'
    write_columns(out, ["a", "b"], [pa.array([], pa.string())] * 2)
    assert out.read_bytes() == b"a,b\r\n"


def test_write_goes_in_pieces_and_a_bad_path_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_files, "CHUNK", 7)
    rows = [[str(i), TRICKY[i % len(TRICKY)]] for i in range(100)]
    columns = [pa.array(c, pa.string()) for c in zip(*rows)]
    write_columns(tmp_path / "out.csv", ["n", "v"], columns)
    assert (tmp_path / "out.csv").read_bytes() == csv_writer(["n", "v"], rows)
    write_rows(tmp_path / "rows.csv", ["n", "v"], rows)           # geocode's path: the same bytes
    assert (tmp_path / "rows.csv").read_bytes() == csv_writer(["n", "v"], rows)
    for write in (write_rows, write_columns):
        with pytest.raises(InvalidInput, match="cannot write"):
            write(tmp_path / "no" / "such" / "dir.csv", ["n", "v"], columns if write is write_columns else rows)


def test_missing_columns_and_clashes_are_refused(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,lat\n1,2\n")
    with pytest.raises(InvalidInput, match="has no column 'lon'"):
        read_columns(path, ["lat", "lon"], [])
    with pytest.raises(InvalidInput, match="already has the column"):
        read_columns(path, ["id"], ["lat"])
    with pytest.raises(InvalidInput, match="cannot read"):
        read_columns(tmp_path / "missing.csv", [], [])
    assert read_rows(path, ["id"], ["x"]) == (["id", "lat"], [["1", "2"]])     # geocode's path
    with pytest.raises(InvalidInput, match="already has the column"):
        read_rows(path, ["id"], ["lat"])


def test_geocodes_rows_go_without_pyarrow(tmp_path):
    """read_rows and write_rows (pin311 geocode, small files) do not import pyarrow: ~0.1 s of its start-up."""
    (tmp_path / "in.csv").write_bytes(b"a,b\n1,2\n")
    code = ("import sys; from app.cli._files import read_rows, write_rows; "
            f"write_rows({str(tmp_path / 'out.csv')!r}, *read_rows({str(tmp_path / 'in.csv')!r}, ['a'], [])); "
            "assert 'pyarrow' not in sys.modules, 'pyarrow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.csv").read_bytes() == b"a,b\r\n1,2\r\n"


def test_coordinates_plain_decimals_as_float_reads_them_and_other_text_as_before():
    plain = ["42.3345", "-71.0398", "+.5", "5.", "1e-3", "42.35019283746512", "-0.00978348289734754", "1e400"]
    odd = ["", " 42.1 ", "\t-71\n", "north", "1,5", "NaN", "inf", "0x10", "١", "1_0"]
    for values in (plain, plain + odd):      # all plain (pyarrow's cast alone) and mixed (pandas for the rest)
        got = _numbers(pa.array(values, pa.string()))
        assert [got[i] for i in range(len(plain))] == [float(v) for v in plain]
    got = dict(zip(odd, _numbers(pa.array(odd, pa.string()))))
    assert got[" 42.1 "] == 42.1 and got["\t-71\n"] == -71.0
    assert all(math.isnan(got[v]) for v in ("", "north", "1,5", "NaN", "0x10", "١", "1_0")) and got["inf"] == math.inf
    assert len(_numbers(pa.array([], pa.string()))) == 0


def test_locate_gives_back_every_column_as_it_was(db_url, tmp_path):
    """`pin311 locate` on a file with a BOM, \\r\\n, quoted commas and line breaks, text that looks like numbers
    and dates, and coordinates with spaces: the input columns come back byte for byte, then the added ones."""
    header = ["id", "note", "y", "x", "when"]
    rows = [["007", 'corner of "A", B\nnear the park', "42.3345", "-71.0398", "2026-12-07"],
            ["1e5", "", " 42.3572 ", "-71.061", "07/12/2026"],
            ["0x1", "é,日本", "north", "-71.05", ""]]
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(b"\xef\xbb\xbf" + csv_writer(header, rows))
    done = subprocess.run([str(Path(sys.executable).with_name("pin311")), "locate", str(src), "--lat-field", "y",
                           "--lon-field", "x", "--out", str(out), "--quiet"], capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": db_url}, timeout=300)
    assert done.returncode == 0, done.stderr
    got_header, got = csv_module(out.read_bytes())
    assert got_header[:5] == header and got_header[5] == "parcel_id" and [r[:5] for r in got] == rows
    assert out.read_bytes() == csv_writer(got_header, got)
    added = dict(zip(got_header, got[0]))
    assert added["police_districts"] == "C6" and dict(zip(got_header, got[1]))["police_districts"] != ""
    assert all(v == "" for v in got[2][5:])
    assert " 1 " in [line for line in done.stdout.splitlines() if "no usable point" in line][0]
