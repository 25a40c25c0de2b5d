"""The batch commands, run as a user runs them (the installed `pin311` script in a subprocess)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from gis.locate import locate_point

PIN311 = str(Path(sys.executable).with_name("pin311"))


def run(db_url, *args):
    import os
    env = {**os.environ, "DATABASE_URL": db_url}
    return subprocess.run([PIN311, *args], capture_output=True, text=True, env=env, timeout=300)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_geocode_a_file(db_url, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    rows = [["1", "615 E Fourth St, South Boston"], ["2", "615 east 4th street"],
            ["3", "INTERSECTION of Beacon St & Charles St"], ["4", "100 Tremont St"],
            ["5", "617 E Fourth St, South Boston"], ["6", "zzzz qqqq"], ["7", ""],
            ["8", "=HYPERLINK(\"http://x\")"], ["9", "615 E Fourth St #3, South Boston, MA 02127"],
            ["10", "10 Brattle St, Cambridge"]]
    write_csv(src, ["id", "where"], rows)
    done = run(db_url, "geocode", str(src), "--address-field", "where", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    got = read_csv(out)
    assert [r["id"] for r in got] == [r[0] for r in rows] and got[7]["where"] == rows[7][1]
    assert list(got[0]) == ["id", "where", "lat", "lon", "score", "match"]
    assert [r["match"] for r in got] == ["exact", "exact", "intersection", "ambiguous", "interpolated", "", "",
                                         "", "exact", "weak"]
    assert got[9]["lat"] == "" and 0 < float(got[9]["score"]) < 0.5     # a guess in Allston: not on the map
    assert got[0]["lat"] == got[1]["lat"] == got[8]["lat"] == "42.334500"
    assert got[3]["lat"] == "" and got[5]["lat"] == got[5]["score"] == ""
    assert "exact" in done.stdout and "no match" in done.stdout and "weak" in done.stdout
    assert "addresses/s" in done.stdout


def test_locate_a_file(db_url, conn, tmp_path):
    src, out = tmp_path / "pts.csv", tmp_path / "out.csv"
    rows = [["a", "42.3345", "-71.0398"], ["b", "42.3572", "-71.061"], ["nan", "NaN", "-71.05"],
            ["text", "north", "-71.05"], ["empty", "", ""], ["range", "95", "-71.05"],
            ["harbour", "42.33", "-70.95"], ["ny", "40.7128", "-74.006"], ["short"]]
    write_csv(src, ["name", "y", "x"], rows)
    done = run(db_url, "locate", str(src), "--lat-field", "y", "--lon-field", "x", "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    got = read_csv(out)
    layers = sorted(conn.scalars(text("SELECT name FROM layers WHERE kind = 'district'")))
    assert list(got[0]) == ["name", "y", "x", "parcel_id", *layers]
    for row in got[:2]:   # the same answer as the single-point SQL
        where = locate_point(conn, float(row["y"]), float(row["x"]))
        assert ({layer: row[layer] for layer in layers}
                == {layer: where.districts.get(layer, {}).get("code", "") for layer in layers})
        assert row["parcel_id"] == (where.parcel_id or "")
    assert got[0]["police_districts"] == "C6" and got[0]["wards"] == "6"
    for row in got[2:]:
        assert all(row[c] == "" for c in ["parcel_id", *layers]), row
    assert "no usable point" in done.stdout and "outside the city" in done.stdout
    summary = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert " 5 " in summary["no"] and " 2 " in summary["outside"] and " 2 " in summary["located"]


def test_batch_commands_refuse_bad_files_in_one_line(db_url, tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, ["a", "b"], [["1", "2"]])
    for args in (["geocode", str(src), "--address-field", "address", "--out", str(tmp_path / "o.csv")],
                 ["locate", str(src), "--lat-field", "lat", "--lon-field", "lon", "--out", str(tmp_path / "o.csv")],
                 ["geocode", str(tmp_path / "missing.csv"), "--address-field", "a", "--out", str(tmp_path / "o.csv")]):
        done = run(db_url, *args)
        assert done.returncode == 1 and done.stderr.startswith("error:") and "Traceback" not in done.stderr, done
    clash = tmp_path / "clash.csv"
    write_csv(clash, ["address", "lat"], [["615 E Fourth St", "1"]])
    done = run(db_url, "geocode", str(clash), "--address-field", "address", "--out", str(tmp_path / "o.csv"))
    assert done.returncode == 1 and "already has" in done.stderr


def test_requests_import(db_url, conn, tmp_path):
    path = tmp_path / "past.jsonl"
    records = [{"service_request_id": f"CLI-{i}", "service_name": "Pick up Dead Animal", "status": "open",
                "requested_datetime": "2019-03-01T10:00:00-05:00", "lat": 42.3345, "long": -71.0398}
               for i in range(3)]
    records.append({**records[0], "service_request_id": "CLI-9", "service_name": "Unicorn Sighting"})
    path.write_text("\n".join(json.dumps(r) for r in records))
    done = run(db_url, "requests", "import", str(path), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "loaded 3" in done.stdout and "unknown service" in done.stdout and "requests/s" in done.stdout
    assert conn.scalar(text("SELECT count(*) FROM service_requests WHERE public_id LIKE 'CLI-%'")) == 3
    again = run(db_url, "requests", "import", str(path), "--format", "open311-json", "--quiet")
    assert "loaded 0" in again.stdout and "already present 3" in again.stdout
    odd = tmp_path / "past.txt"
    odd.write_text("x")
    done = run(db_url, "requests", "import", str(odd))
    assert done.returncode == 1 and "--format" in done.stderr
    done = run(db_url, "requests", "import", str(path), "--service", "no-such")
    assert done.returncode == 1 and "unknown service" in done.stderr
    conn.execute(text("DELETE FROM request_events WHERE request_id IN "
                      "(SELECT id FROM service_requests WHERE public_id LIKE 'CLI-%')"))
    conn.execute(text("DELETE FROM service_requests WHERE public_id LIKE 'CLI-%'"))
    conn.commit()
