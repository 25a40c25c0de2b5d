"""Build the demo city in data/ from the real Boston data in ../shared/data/boston.

    python data/build_demo.py [--source ../shared/data/boston]

Deterministic and re-runnable: the same sources give byte-identical outputs. Writes, into data/:

  city_boundary.geojson, wards.geojson, precincts.geojson, neighborhoods.geojson, police_districts.geojson
      districts (EPSG:4326, 6 decimals), every feature with `code` and `name`
  parcels.geojson.gz          FY2013 parcels of 11 wards (gzip GeoJSON; GDAL reads /vsigzip/data/parcels.geojson.gz)
  addresses.csv.gz            address gazetteer from the 2015 311 cases
  demo_requests.csv.gz        ~15,000 real 2015 cases of the catalogue's categories, original Boston columns
  services.yaml               the service catalogue (definitions below + SLA / group / department from the data)
  crews.csv, routing_rules.csv
  neighborhood_labels.csv     the 2015 CSV `neighborhood` labels -> neighbourhood polygon codes

The source layout and its pitfalls are described in ../shared/data/boston/SOURCES.md.
"""
import argparse
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml

from demo_catalogue import CATALOGUE, DEPARTMENT_CREWS, ISD_PARCEL_WARD, NEEDLE_TEAMS
from demo_common import DATE_FMT, DEFAULT_SOURCE, HERE, say, write_csv
from demo_sources import boundaries, demo_requests, gazetteer, inside, parcels, read_cases

# ----------------------------------------------------------------------------------------------------------------
# 9. The service catalogue (its definitions are in demo_catalogue.py)


def _sla_from_data(cases):
    """Median TARGET_DT - OPEN_DT per TYPE in hours, where the City set a target on enough cases."""
    opened = pd.to_datetime(cases["OPEN_DT"], format=DATE_FMT, errors="coerce")
    target = pd.to_datetime(cases["TARGET_DT"], format=DATE_FMT, errors="coerce")
    hours = (target - opened).dt.total_seconds() / 3600
    stats = pd.DataFrame({"TYPE": cases["TYPE"], "h": hours}).dropna().groupby("TYPE")["h"].agg(["median", "size"])
    return stats[(stats["size"] >= 20) & (stats["median"] >= 1)]


def _mode(series):
    s = series[series.str.strip() != ""]
    if s.empty:
        return ""
    counts = s.value_counts()
    return sorted(counts[counts == counts.max()].index)[0]


def build_catalogue(cases):
    sla = _sla_from_data(cases)
    by_type = cases.groupby("TYPE")
    services, notes = [], {}
    for spec in CATALOGUE:
        name = spec["name"]
        assert name in by_type.groups, f"{name!r} is not a 2015 TYPE"
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", spec["code"]), spec["code"]
        rows = by_type.get_group(name)
        if name in sla.index and "sla" not in spec:   # a hand value overrides the City's (traffic signals)
            hours = int(round(sla.loc[name, "median"]))
            notes[spec["code"]] = f"City's 2015 median target (n={int(sla.loc[name, 'size'])})"
        else:
            hours = spec["sla"]
            notes[spec["code"]] = ("set here: the City's 2015 target is not a service level"
                                   if name in sla.index else "set here: no City target in the 2015 data")
        attributes = []
        for order, a in enumerate(spec.get("attributes", []), start=1):
            attributes.append({k: a[k] for k in ("code", "datatype", "required", "description",
                                                 "datatype_description")} | {"order": order}
                              | ({"values": a["values"]} if "values" in a else {})
                              | {b: a[b] for b in ("min", "max") if b in a})
        services.append({
            "code": spec["code"], "name": name,
            "group": _mode(rows["REASON"]), "department": _mode(rows["SUBJECT"]),
            "description": spec["description"], "keywords": spec["keywords"], "sla_hours": hours,
            "public": spec.get("public", True), "sensitive": spec.get("sensitive", False),
            "default_crew": spec["default_crew"], "attributes": attributes,
        })
    codes = [s["code"] for s in services]
    assert len(set(codes)) == len(codes), "duplicate service codes"
    datatypes = {a["datatype"] for s in services for a in s["attributes"]}
    assert {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"} <= datatypes, datatypes
    return services, notes


def _flow(value):
    return yaml.safe_dump(value, default_flow_style=True, width=10 ** 6, allow_unicode=True).strip() \
        .removesuffix("\n...").removesuffix("...").strip()


def write_services(services, notes, cases):
    lines = [
        "# The demo city's service catalogue, written by data/build_demo.py "
        "(edit CATALOGUE in data/demo_catalogue.py, then rebuild).",
        "# name: the City of Boston 311 TYPE exactly (boston-csv rows map to services by it);",
        "# group / department: the TYPE's most common REASON / SUBJECT in the 2015 cases.",
        "# sla_hours: the City's 2015 median TARGET_DT - OPEN_DT where it set a target, else a value set here.",
        "# public: false = internal only (not offered to residents or Open311);",
        "# sensitive: true = shown only coarsened on public outputs, photos never public.",
        "# attributes: Open311 GeoReport v2 attribute definitions (the questions an agent asks).",
        "# min / max / integer: what a number question accepts, integer: true for a count (whole numbers only)",
        "#   (ours, not Open311 fields: its service definitions omit them and say the rule in datatype_description).",
        "# Routing is in routing_rules.csv; default_crew takes what no rule matches.",
    ]
    for s in services:
        n2015 = int((cases["TYPE"] == s["name"]).sum())
        lines.append(f"- code: {s['code']}")
        for key in ("name", "group", "department", "description"):
            lines.append(f"  {key}: {_flow(s[key])}")
        lines.append(f"  keywords: {_flow(s['keywords'])}")
        lines.append(f"  sla_hours: {s['sla_hours']}    # {notes[s['code']]}; {n2015} cases in 2015")
        for key in ("public", "sensitive", "default_crew"):
            lines.append(f"  {key}: {_flow(s[key])}")
        if not s["attributes"]:
            lines.append("  attributes: []")
            continue
        lines.append("  attributes:")
        for a in s["attributes"]:
            lines.append(f"    - code: {_flow(a['code'])}")
            for key in ("datatype", "required", "description", "datatype_description", "order"):
                lines.append(f"      {key}: {_flow(a[key])}")
            if "values" in a:
                lines.append(f"      values: {_flow(a['values'])}")
            for key in ("min", "max", "integer"):
                if key in a:
                    lines.append(f"      {key}: {_flow(a[key])}")
    text = "\n".join(lines) + "\n"
    assert yaml.safe_load(text) == services, "services.yaml does not round-trip"
    (HERE / "services.yaml").write_text(text, encoding="utf-8")
    say(f"services.yaml: {len(services)} services "
        f"({sum(not s['public'] for s in services)} internal, {sum(s['sensitive'] for s in services)} sensitive)")


# ----------------------------------------------------------------------------------------------------------------
# 10-11. Crews and routing rules
RULE_COLUMNS = ["service_code", "strategy", "layer", "district_code", "attribute", "value", "crew_code", "priority"]


def crews_and_rules(layers):
    wards, hoods, police = layers["wards"], layers["neighborhoods"], layers["police_districts"]
    rows = []

    def crew(code, name, dept, contact, point=None, on_duty=True):
        rows.append({"code": code, "name": name, "department": dept, "contact": contact,
                     "on_duty": "true" if on_duty else "false",
                     "lat": f"{point.y:.6f}" if point is not None else "",
                     "lon": f"{point.x:.6f}" if point is not None else ""})

    for spec in DEPARTMENT_CREWS:
        crew(*spec)
    for _, d in police.iterrows():
        crew(f"animal-control-{d['code'].lower()}", f"Animal Control – {d['code']}", "Animal Control",
             "animal.control@example.org", d.geometry.representative_point())
    for _, w in wards.sort_values("ward").iterrows():
        crew(f"sanitation-ward-{w['code']}", f"Sanitation – Ward {w['code']}", "Public Works Department",
             "sanitation@example.org", w.geometry.representative_point())
    for _, h in hoods.iterrows():
        crew(f"streetlights-{h['code']}", f"Street Lights – {h['name']}", "Public Works Department",
             "street.lights@example.org", h.geometry.representative_point())
    for code, (lat, lon) in NEEDLE_TEAMS.items():
        crew(code, f"Needle Team {code.rsplit('-', 1)[1]}", "Mayor's 24 Hour Hotline", "needles@example.org",
             shapely.Point(lon, lat))
    crew("sweep-crew-1", "Clean Sweep Crew 1", "Public Works Department", "sweeps@example.org")
    crews = pd.DataFrame(rows)
    assert crews["code"].is_unique
    write_csv(crews, "crews.csv")

    rules = []
    for spec in sorted(CATALOGUE, key=lambda s: s["code"]):
        code, how = spec["code"], spec.get("routing")
        if how == "police":
            rules += [(code, "district", "police_districts", d, "", "", f"animal-control-{d.lower()}", 10)
                      for d in police["code"]]
        elif how == "ward":
            rules += [(code, "district", "wards", w, "", "", f"sanitation-ward-{w}", 10)
                      for w in wards.sort_values("ward")["code"]]
        elif how == "hood":
            rules += [(code, "district", "neighborhoods", h, "", "", f"streetlights-{h}", 10) for h in hoods["code"]]
        elif how == "needle":
            rules.append((code, "nearest", "", "", "", "needle-team-", "", 10))
        elif how == "isd_parcels":
            rules.append((code, "parcel_attribute", "", "", "ward", ISD_PARCEL_WARD, "isd-back-bay", 10))
        else:
            assert how is None, how
    rules = pd.DataFrame(rules, columns=RULE_COLUMNS)
    known = set(crews["code"])
    assert set(rules["crew_code"][rules["crew_code"] != ""]) <= known, "rule names an unknown crew"
    assert {s["default_crew"] for s in CATALOGUE} <= known, "default_crew names an unknown crew"
    for value in rules.loc[rules["strategy"] == "nearest", "value"]:
        assert any(c.startswith(value) for c in known), value
    write_csv(rules, "routing_rules.csv")
    return crews, rules


# ----------------------------------------------------------------------------------------------------------------
# 13. The City's neighbourhood labels vs the polygons

def neighborhood_labels(cases, boundary, hoods):
    c = cases[~cases["_placeholder"] & (cases["neighborhood"].str.strip() != "")]
    c = c[inside(boundary, c["_lon"].to_numpy(), c["_lat"].to_numpy())]
    pts = gpd.GeoDataFrame({"label": c["neighborhood"].str.strip().to_numpy()},
                           geometry=gpd.points_from_xy(c["_lon"], c["_lat"]), crs=4326)
    j = gpd.sjoin(pts, hoods[["code", "geometry"]], predicate="within", how="inner")
    j = j.reset_index().drop_duplicates("index")
    counts = j.groupby(["label", "code"]).size().rename("n").reset_index()
    counts["points"] = counts.groupby("label")["n"].transform("sum")
    counts["share"] = counts["n"] / counts["points"]
    counts = counts.sort_values(["label", "share", "code"], ascending=[True, False, True])
    best = counts.groupby("label").head(1)
    # a label's other polygons, where a real part of it lies (3 % of its cases or more)
    others = counts[(counts["share"] >= 0.03)].merge(best[["label", "code"]], on=["label", "code"],
                                                     how="left", indicator=True)
    others = others[others["_merge"] == "left_only"].drop(columns="_merge")
    out = pd.concat([best.assign(best="true"), others.assign(best="false")])
    out = out.sort_values(["label", "share", "code"], ascending=[True, False, True])
    out["share"] = out["share"].round(3)
    out = out[["label", "code", "best", "share", "points"]]
    write_csv(out, "neighborhood_labels.csv")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Checks

def _ward_number(label):
    m = re.search(r"(\d+)", str(label))
    return str(int(m.group(1))) if m else ""


def check(layers, parcel_gdf, gazetteer_df, sample, services, crews, rules, labels):
    say("checks:")
    boundary = layers["city_boundary"]
    for name in ("city_boundary", "wards", "precincts", "neighborhoods", "police_districts"):
        g = layers[name]
        assert g.crs.to_epsg() == 4326 and g["code"].map(type).eq(str).all() and g["name"].map(type).eq(str).all()
        assert g.geometry.is_valid.all(), f"{name}: invalid geometry"
    say("  layers: " + ", ".join(f"{k} {len(v)}" for k, v in layers.items()) + f", parcels {len(parcel_gdf)}")

    def locate(lat, lon):
        pt = gpd.GeoDataFrame(geometry=[shapely.Point(lon, lat)], crs=4326)
        out = {}
        for name in ("wards", "precincts", "neighborhoods", "police_districts"):
            hit = gpd.sjoin(pt, layers[name][["code", "geometry"]], predicate="within")
            out[name] = ",".join(hit["code"])
        return out

    a = gazetteer_df[gazetteer_df["address"].str.startswith("615 E Fourth St,")]
    assert len(a) == 1, a
    r = a.iloc[0]
    where = locate(r["lat"], r["lon"])
    say(f"  scenario 1: {r['address']} -> {r['lat']}, {r['lon']} {where} parcel {r['parcel_id'] or '-'}")
    assert abs(r["lat"] - 42.3345) < 5e-4 and abs(r["lon"] + 71.0398) < 5e-4
    assert where["wards"] == "6" and where["police_districts"] == "C6" and where["neighborhoods"] == "south-boston"
    t = gazetteer_df[gazetteer_df["address"].str.startswith("100 Tremont St,")]
    for _, r in t.iterrows():
        say(f"  scenario 2: {r['address']} -> {r['lat']}, {r['lon']} {locate(r['lat'], r['lon'])}")
    assert len(t) == 2, t
    cambridge = inside(boundary, np.array([-71.1097]), np.array([42.3736]))[0]
    say(f"  scenario 8: 42.3736, -71.1097 inside the city: {cambridge}")
    assert not cambridge
    assert inside(boundary, np.array([-71.0398]), np.array([42.3345]))[0]

    lat = pd.to_numeric(sample["LATITUDE"]).to_numpy()
    lon = pd.to_numeric(sample["LONGITUDE"]).to_numpy()
    pts = gpd.GeoDataFrame({"label": sample["ward"].map(_ward_number).to_numpy(),
                            "plabel": sample["police_district"].str.replace("-", "").to_numpy()},
                           geometry=gpd.points_from_xy(lon, lat), crs=4326)
    j = gpd.sjoin(pts, layers["wards"][["code", "geometry"]], predicate="within", how="left")
    j = j[~j.index.duplicated()]
    labelled = j[j["label"] != ""]
    ward_ok = (labelled["label"] == labelled["code"]).mean()
    k = gpd.sjoin(pts, layers["police_districts"][["code", "geometry"]], predicate="within", how="left")
    k = k[~k.index.duplicated()]
    k = k[k["plabel"] != ""]
    police_ok = (k["plabel"] == k["code"]).mean()
    say(f"  demo requests: ward label agrees with point-in-polygon for {ward_ok:.2%} of {len(labelled)} "
        f"labelled rows, police district {police_ok:.2%} of {len(k)}")
    assert ward_ok >= 0.98

    in_parcel = (gazetteer_df["parcel_id"] != "").sum()
    pw = set(parcel_gdf["ward"])
    gz = gpd.GeoDataFrame(gazetteer_df, geometry=gpd.points_from_xy(gazetteer_df["lon"], gazetteer_df["lat"]),
                          crs=4326)
    gz = gpd.sjoin(gz, layers["wards"][["code", "geometry"]], predicate="within", how="left")
    gz = gz[~gz.index.duplicated()]
    in_parcel_wards = gz[gz["code"].isin(pw)]
    share = (in_parcel_wards["parcel_id"] != "").mean()
    say(f"  gazetteer: {len(gazetteer_df)} addresses, {in_parcel} in a parcel; "
        f"{share:.1%} of the {len(in_parcel_wards)} in the parcel wards")
    assert share > 0.95

    names = {s["name"] for s in services}
    assert set(sample["TYPE"]) <= names
    say(f"  catalogue: {len(services)} services, {len(crews)} crews, {len(rules)} routing rules "
        f"({', '.join(f'{k} {v}' for k, v in rules['strategy'].value_counts().items())}), "
        f"{labels['label'].nunique()} neighbourhood labels mapped")
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    say(f"  data/ total {total / 2**20:.1f} MiB")
    assert total < 20 * 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help=f"the Boston data folder (default {DEFAULT_SOURCE})")
    args = parser.parse_args()
    src = args.source.resolve()
    if not (src / "SOURCES.md").exists():
        raise SystemExit(f"no Boston data at {src} (pass --source)")
    say(f"source: {src}")
    layers = boundaries(src)
    parcel_gdf = parcels(src)
    cases = read_cases(src)
    services, notes = build_catalogue(cases)
    write_services(services, notes, cases)
    gaz = gazetteer(cases, layers["city_boundary"], parcel_gdf)
    sample = demo_requests(cases, layers["city_boundary"], {s["name"] for s in services})
    crews, rules = crews_and_rules(layers)
    labels = neighborhood_labels(cases, layers["city_boundary"], layers["neighborhoods"])
    check(layers, parcel_gdf, gaz, sample, services, crews, rules, labels)
    say("done")


if __name__ == "__main__":
    main()
