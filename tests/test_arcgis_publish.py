"""ArcGIS publishing with the real `arcgis` client against the stand-in portal (tests/standin_portal.py)."""
import json

from sqlalchemy import text

from click.testing import CliRunner

from app.cli import main
from tests.arcgis_fixtures import (  # noqa: F401
    arcgis_env, assert_layer_is_public_view, hosted_requests, portal, published)


def test_publish_makes_layers_webmap_and_dashboard_holding_the_public_view(engine, portal, published):
    kinds = sorted(i["type"] for i in portal.items.values())
    assert kinds == ["Dashboard", "Feature Service", "Feature Service", "Feature Service", "Feature Service",
                     "Feature Service", "Web Map"]
    with engine.connect() as conn:
        assert_layer_is_public_view(conn, portal)


def _feature_service(portal, suffix):
    return next(i for i in portal.items.values() if i["type"] == "Feature Service" and i["name"].endswith(suffix))


def test_layers_carry_types_aliases_domains_metadata_and_districts(engine, portal, published):
    requests_item = _feature_service(portal, "_requests")
    assert "pin311" in requests_item["tags"] and requests_item["snippet"] and requests_item["description"]
    assert requests_item["title"].startswith("311 requests")
    layer = portal.layer(requests_item["name"])
    fields = {f["name"]: f for f in layer.definition["fields"]}
    assert fields["requested_at"]["type"] == "esriFieldTypeDate" and fields["public_id"]["alias"] == "Request number"
    assert [c["code"] for c in fields["status"]["domain"]["codedValues"]] == [
        "open", "acknowledged", "in_progress", "closed"]
    with engine.connect() as conn:
        public = {r.code: r.name for r in conn.execute(text("SELECT code, name FROM services WHERE public"))}
        districts = dict(conn.execute(text("""SELECT l.name, count(*)
                                              FROM districts d JOIN layers l ON l.id = d.layer_id
                                              WHERE l.kind = 'district' GROUP BY l.name""")).all())
    assert {c["code"]: c["name"] for c in fields["service_code"]["domain"]["codedValues"]} == public
    assert "public_id" in layer.unique
    assert not {"description", "phone", "email", "first_name", "last_name", "attributes"} & set(fields)
    for name, count in districts.items():
        assert name in fields                          # each request says its district of every layer
        item = _feature_service(portal, f"_{name}")
        held = portal.layer(item["name"]).rows()
        assert len(held) == count and all(f["geometry"]["rings"] for f in held)
        assert "pin311" in item["tags"] and item["snippet"]


def test_sensitive_requests_are_published_only_coarsened(engine, portal, published):
    held, _ = hosted_requests(portal)
    with engine.connect() as conn:
        rows = conn.execute(text("""SELECT r.public_id, ST_X(r.geom) AS x, ST_Y(r.geom) AS y, r.address
            FROM service_requests r JOIN services s ON s.code = r.service_code WHERE s.sensitive AND s.public""")).all()
    assert rows
    moved = [r for r in rows if abs(held[r.public_id]["geometry"]["x"] - r.x) > 1e-7
             or abs(held[r.public_id]["geometry"]["y"] - r.y) > 1e-7]
    assert len(moved) > 0.95 * len(rows)              # snapped to the 250 m grid, not where it was reported
    assert all(held[r.public_id]["attributes"]["coarsened"] == 1 for r in rows)
    assert all(held[r.public_id]["attributes"]["media_url"] is None for r in rows)


def test_webmap_and_dashboard_are_built_over_the_hosted_layers(portal, published):
    (webmap,) = portal.items_of_type("Web Map")
    (board,) = portal.items_of_type("Dashboard")
    requests_item = _feature_service(portal, "_requests")
    wm = portal.item_data[webmap["id"]]
    urls = [lyr["url"] for lyr in wm["operationalLayers"]]
    assert requests_item["url"] + "/0" in urls and len(urls) == 5
    assert all(lyr["itemId"] in portal.items for lyr in wm["operationalLayers"])
    data = portal.item_data[board["id"]]
    widgets = {w["id"]: w for w in data["widgets"]}
    assert widgets["map"]["itemId"] == webmap["id"]
    assert widgets["by-status"]["datasets"][0]["groupByFields"] == ["status"]
    assert widgets["by-category"]["datasets"][0]["groupByFields"] == ["service_code"]
    assert widgets["by-district"]["datasets"][0]["groupByFields"] == ["neighborhoods"]
    assert "within_sla" in json.dumps(widgets["sla"]) and widgets["trend"]["category"]["fieldName"] == "requested_at"
    for w in data["widgets"]:
        for ds in w.get("datasets", []):
            assert ds["dataSource"]["itemId"] == requests_item["id"]
    assert "{{" not in json.dumps(data) + json.dumps(wm)     # every placeholder filled
    assert "pin311" in board["tags"] and board["snippet"]


def test_publishing_again_reuses_the_items_and_reconciles(engine, portal, published):
    before = dict(portal.items)
    service = _feature_service(portal, "_requests")["name"]
    stray = {"attributes": {"public_id": "999999999", "service_code": "x", "status": "open"},
             "geometry": {"x": -71.06, "y": 42.36}}
    portal.layer(service).apply_edits([stray], [], [])       # something the database does not hold
    out = CliRunner().invoke(main, ["arcgis", "publish"])        # `pin311 arcgis publish`, a second time
    assert out.exit_code == 0, out.output
    assert portal.items.keys() == before.keys()
    updated = published["requests"]["added"]
    assert f"requests: 0 added, {updated} updated, 1 deleted" in out.output
    assert f"webmap: {published['webmap']}" in out.output and f"dashboard: {published['dashboard']}" in out.output
    with engine.connect() as conn:
        assert_layer_is_public_view(conn, portal)
        saved = conn.execute(text("SELECT count(*) FROM arcgis_items WHERE portal_url = :p"),
                             {"p": portal.url}).scalar()
    assert saved == 1 + 4 + 2
