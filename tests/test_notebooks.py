"""The analyst notebooks run top to bottom (nbclient) against the live app, reading it only through its
OGC API – Features service, and reproduce numbers a direct SQL query gives on the same database."""
import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from sqlalchemy import text

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _run(name, live_server, tmp_path, monkeypatch):
    """Execute a notebook with PIN311_URL pointing at the live server; return its RESULT dict."""
    monkeypatch.setenv("PIN311_URL", live_server)          # the kernel inherits this environment
    monkeypatch.setenv("PIN311_NOTEBOOK_OUT", str(tmp_path))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    for cell in reversed(nb.cells):
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith("RESULT "):
                    return json.loads(line[len("RESULT "):])
    raise AssertionError(f"{name} printed no RESULT line")


def test_notebooks_are_stored_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert len(names) >= 3
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, name
        assert "PIN311_URL" in (NOTEBOOKS / "pin311_client.py").read_text()


def test_where_requests_come_from_counts_per_police_district(live_server, conn, tmp_path, monkeypatch):
    result = _run("01_where_requests_come_from.ipynb", live_server, tmp_path, monkeypatch)
    want = dict(conn.execute(text("SELECT districts->>'police_districts', count(*) FROM public_requests "
                                  "WHERE coalesce(districts->>'police_districts', '') <> '' GROUP BY 1")).all())
    assert want and result["police_district_counts"] == want
    assert result["total"] == conn.scalar(text("SELECT count(*) FROM public_requests"))
    html = (tmp_path / "requests_by_police_district.html").read_text()
    assert f"{live_server}/static/vendor/leaflet/leaflet.js" in html and "cdn" not in html.lower()
    assert (tmp_path / "requests_by_police_district.png").stat().st_size > 1000


def test_sla_by_district_and_category(live_server, conn, tmp_path, monkeypatch):
    result = _run("02_sla_by_district_and_category.ipynb", live_server, tmp_path, monkeypatch)
    want = {w: [met, closed] for w, met, closed in conn.execute(text("""
        SELECT districts->>'wards', count(*) FILTER (WHERE closed_at <= expected_at), count(*)
          FROM public_requests
         WHERE status = 'closed' AND expected_at IS NOT NULL AND closed_at IS NOT NULL
           AND coalesce(districts->>'wards', '') <> '' GROUP BY 1""")).all()}
    assert want and result["sla_by_ward"] == want
    assert (tmp_path / "sla_by_ward.png").exists() and (tmp_path / "sla_by_category.png").exists()


def test_hot_spots_and_repeat_locations(live_server, conn, tmp_path, monkeypatch):
    result = _run("03_hot_spots_and_repeat_locations.ipynb", live_server, tmp_path, monkeypatch)
    total = conn.scalar(text("SELECT count(*) FROM public_requests"))
    assert result["grid_total"] == result["h3_total"] == total
    cells = conn.scalar(text("SELECT count(DISTINCT (floor((ST_X(ST_Transform(geom, 3857)) + 125) / 250), "
                             "floor((ST_Y(ST_Transform(geom, 3857)) + 125) / 250))) FROM public_requests"))
    assert result["cells"] == cells
    repeats = conn.scalar(text("SELECT count(*) FROM (SELECT 1 FROM public_requests WHERE coalesce(address, '') <> '' "
                               "GROUP BY address, service_name HAVING count(*) >= 3) x"))
    assert result["repeat_pairs"] == repeats > 0
