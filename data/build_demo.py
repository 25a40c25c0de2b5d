"""Build the demo city in data/ from the real Boston data in ../shared/data/boston.

    python data/build_demo.py [--source PATH]

Deterministic and re-runnable. Writes the boundary and district layers (GeoJSON, EPSG:4326, 6 decimals),
the parcels of the 11 wards that have them (gzip GeoJSON), the address gazetteer (from the 2015 311
cases), a sample of historic requests, and the crews and routing rules derived from the districts.
The service catalogue (services.yaml) is written by hand and only read here.
"""
import argparse
import glob
import gzip
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml

HERE = Path(__file__).resolve().parent
CITY_HALL = (42.3594, -71.0587)      # Boston's default point for cases with no real location
SAMPLE_REQUESTS = 15_000


def say(message):
    print(f"[build_demo] {message}", flush=True)


def rounded(gdf):
    out = gdf.copy()
    out["geometry"] = shapely.set_precision(out.geometry.values, 1e-6, mode="valid_output")
    out["geometry"] = out.geometry.make_valid()
    return out


def write_geojson(gdf, name):
    path = HERE / name
    if path.exists():
        path.unlink()
    rounded(gdf).to_file(path, driver="GeoJSON", COORDINATE_PRECISION=6)
    say(f"{name}: {len(gdf)} features, {path.stat().st_size / 1e6:.1f} MB")


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def boundaries(src):
    b = src / "boundaries"
    wards = gpd.read_file(b / "wards.geojson")
    wards["code"] = wards["WARD"].astype(int).astype(str)
    wards["name"] = "Ward " + wards["code"]
    wards = wards[["code", "name", "geometry"]].sort_values("code", key=lambda s: s.astype(int))
    # The two files below say EPSG:4326 but hold Massachusetts State Plane feet (SOURCES.md).
    precincts = gpd.read_file(b / "precincts.geojson").set_crs(2249, allow_override=True).to_crs(4326)
    precincts["code"] = precincts["WARD_PRECINCT"].astype(str).str.zfill(4)
    precincts["ward"] = precincts["code"].str[:2].astype(int).astype(str)
    precincts["name"] = "Ward " + precincts["ward"] + " Precinct " + precincts["code"].str[2:].str.lstrip("0")
    precincts = precincts[["code", "name", "ward", "geometry"]].sort_values("code")
    hoods = gpd.read_file(b / "neighborhoods.geojson").set_crs(2249, allow_override=True).to_crs(4326)
    hoods["code"] = hoods["Name"].map(slug)
    hoods["name"] = hoods["Name"]
    hoods = hoods[["code", "name", "geometry"]].sort_values("code")
    police = gpd.read_file(b / "police_districts.geojson")
    police["code"] = police["DISTRICT"]
    police["name"] = "District " + police["code"].str[0] + "-" + police["code"].str[1:]
    police = police[["code", "name", "geometry"]].sort_values("code")
    city = wards.geometry.union_all().buffer(0)
    # Drop slivers and pinholes left between ward polygons (< 1,000 m²).
    parts = [p for p in getattr(city, "geoms", [city])]
    metric = gpd.GeoSeries(parts, crs=4326).to_crs(26986)
    parts = [shapely.Polygon(p.exterior, [h for h in p.interiors
                                          if gpd.GeoSeries([shapely.Polygon(h)], crs=4326).to_crs(26986).area[0] > 1000])
             for p, m in zip(parts, metric) if m.area > 1000]
    boundary = gpd.GeoDataFrame({"code": ["boston"], "name": ["City of Boston"]},
                                geometry=[shapely.MultiPolygon(parts)], crs=4326)
    write_geojson(boundary, "city_boundary.geojson")
    write_geojson(wards, "wards.geojson")
    write_geojson(precincts, "precincts.geojson")
    write_geojson(hoods, "neighborhoods.geojson")
    write_geojson(police, "police_districts.geojson")
    return boundary, wards, hoods, police


def parcels(src):
    frames = []
    for path in sorted(glob.glob(str(src / "parcels_fy2013" / "ward_*.geojson"))):
        frames.append(gpd.read_file(path))
    p = pd.concat(frames, ignore_index=True)
    p = gpd.GeoDataFrame({"parcel_id": p["PID_LONG"].astype(str), "ward": p["WARD"].astype(str),
                          "wpd": p["WPD"].astype(str)}, geometry=p.geometry, crs=4326)
    p = rounded(p[~p.geometry.is_empty & p.geometry.notna()])
    path = HERE / "parcels.geojson.gz"
    with gzip.open(path, "wt", compresslevel=9) as fh:
        fh.write(p.to_json(drop_id=True, to_wgs84=False))
    say(f"parcels.geojson.gz: {len(p)} parcels, {path.stat().st_size / 1e6:.1f} MB")
    return p


def read_cases(src):
    frames = []
    for path in sorted(glob.glob(str(src / "311_cases_2015_by_type" / "*.csv"))):
        frames.append(pd.read_csv(path, dtype=str, keep_default_na=False))
    cases = pd.concat(frames, ignore_index=True)
    cases["lat"] = pd.to_numeric(cases["LATITUDE"], errors="coerce")
    cases["lon"] = pd.to_numeric(cases["LONGITUDE"], errors="coerce")
    placeholder = (cases["lat"].round(4) == CITY_HALL[0]) & (cases["lon"].round(4) == CITY_HALL[1])
    say(f"2015 cases: {len(cases)} rows, {int(placeholder.sum())} on the City Hall placeholder (dropped)")
    return cases[~placeholder & cases["lat"].notna() & cases["lon"].notna()].copy()


def gazetteer(cases, boundary, parcel_gdf):
    addr = cases[cases["Property_Type"] == "Address"].copy()
    addr["location"] = addr["Location"].str.strip()
    grouped = addr.groupby("location").agg(lat=("lat", "median"), lon=("lon", "median"),
                                           sam_id=("Property_ID", "first")).reset_index()
    parts = grouped["location"].str.split(r"\s{2,}", regex=True)
    grouped["street_part"] = parts.str[0]
    grouped["city"] = parts.str[1].fillna("")
    grouped["zip"] = grouped["location"].str.extract(r"(\d{5})\s*$")[0].fillna("")
    numbered = grouped["street_part"].str.extract(r"^(\d+[A-Za-z]?(?:-\d+[A-Za-z]?)?)\s+(.+)$")
    grouped["number"], grouped["street"] = numbered[0], numbered[1]
    grouped = grouped[grouped["number"].notna() & grouped["street"].notna()]
    pts = gpd.GeoDataFrame(grouped, geometry=gpd.points_from_xy(grouped["lon"], grouped["lat"]), crs=4326)
    pts = pts[pts.within(boundary.geometry.iloc[0])]
    joined = gpd.sjoin(pts, parcel_gdf[["parcel_id", "geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    out = pd.DataFrame({
        "address": joined["street_part"] + ", " + joined["city"] + ", MA " + joined["zip"],
        "number": joined["number"], "street": joined["street"], "city": joined["city"], "zip": joined["zip"],
        "lat": joined["lat"].round(6), "lon": joined["lon"].round(6), "parcel_id": joined["parcel_id"].fillna(""),
        "sam_id": pd.to_numeric(joined["sam_id"], errors="coerce").astype("Int64").astype(str).replace("<NA>", ""),
    }).sort_values("address")
    out["address"] = out["address"].str.replace(r", MA $", ", MA", regex=True)
    path = HERE / "addresses.csv.gz"
    out.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
    say(f"addresses.csv.gz: {len(out)} addresses ({(out['parcel_id'] != '').sum()} in a parcel), "
        f"{path.stat().st_size / 1e6:.1f} MB")


def demo_requests(cases, boundary, services):
    names = {s["name"] for s in services}
    usable = cases[cases["TYPE"].isin(names)]
    pts = gpd.GeoSeries(gpd.points_from_xy(usable["lon"], usable["lat"]), crs=4326, index=usable.index)
    usable = usable[pts.within(boundary.geometry.iloc[0])]
    share = min(1.0, SAMPLE_REQUESTS / len(usable))
    sample = usable.groupby("TYPE").sample(frac=share, random_state=311)
    sample = sample.drop(columns=["lat", "lon"]).sort_values("CASE_ENQUIRY_ID")
    path = HERE / "demo_requests.csv.gz"
    sample.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
    say(f"demo_requests.csv.gz: {len(sample)} requests of {sample['TYPE'].nunique()} categories, "
        f"{path.stat().st_size / 1e6:.1f} MB")


def crews_and_rules(wards, hoods, police, services):
    rows = []

    def crew(code, name, dept, contact, point=None, on_duty=True):
        rows.append({"code": code, "name": name, "department": dept, "contact": contact,
                     "on_duty": str(on_duty).lower(),
                     "lat": round(point.y, 6) if point is not None else "",
                     "lon": round(point.x, 6) if point is not None else ""})

    for code, name, dept, contact in (
            ("animal-control-dispatch", "Animal Control – Dispatch", "Animal Control", "animal.control@example.org"),
            ("pwd-dispatch", "Public Works – Dispatch", "Public Works Department", "pwd.dispatch@example.org"),
            ("streetlights-dispatch", "Street Lights – Dispatch", "Public Works Department", "street.lights@example.org"),
            ("transportation-dispatch", "Transportation – Dispatch", "Transportation - Traffic Division",
             "traffic@example.org"),
            ("isd-inspections", "Inspectional Services – Intake", "Inspectional Services", "isd@example.org"),
            ("isd-back-bay", "Inspectional Services – Back Bay / Beacon Hill", "Inspectional Services",
             "isd.backbay@example.org"),
            ("parks-dispatch", "Parks – Dispatch", "Parks & Recreation Department", "parks@example.org"),
            ("bwsc-dispatch", "Water & Sewer – Dispatch", "Boston Water & Sewer Commission", "bwsc@example.org"),
            ("hotline-dispatch", "Mayor's Hotline – Dispatch", "Mayor's 24 Hour Hotline", "hotline@example.org")):
        crew(code, name, dept, contact)
    for _, row in police.iterrows():
        crew(f"animal-control-{row['code'].lower()}", f"Animal Control – {row['code']}", "Animal Control",
             "animal.control@example.org", row.geometry.representative_point())
    for _, row in wards.iterrows():
        crew(f"sanitation-ward-{row['code']}", f"Sanitation – Ward {row['code']}", "Public Works Department",
             "sanitation@example.org", row.geometry.representative_point())
    for _, row in hoods.iterrows():
        crew(f"streetlights-{row['code']}", f"Street Lights – {row['name']}", "Public Works Department",
             "street.lights@example.org", row.geometry.representative_point())
    depots = {"needle-team-1": (42.3334, -71.0735), "needle-team-2": (42.3601, -71.0589),
              "needle-team-3": (42.3163, -71.0650)}
    for code, (lat, lon) in depots.items():
        crew(code, f"Needle Team {code[-1]}", "Mayor's 24 Hour Hotline", "needles@example.org",
             shapely.Point(lon, lat))
    crew("sweep-crew-1", "Clean Sweep Crew 1", "Public Works Department", "sweeps@example.org")
    pd.DataFrame(rows).to_csv(HERE / "crews.csv", index=False)
    say(f"crews.csv: {len(rows)} crews")

    rules = []
    by_strategy = {s["code"]: s.get("routing") for s in services}
    for code, how in sorted(by_strategy.items()):
        if how == "animal_control_by_police_district":
            for d in police["code"]:
                rules.append((code, "district", "police_districts", d, "", "", f"animal-control-{d.lower()}", 10))
        elif how == "sanitation_by_ward":
            for w in wards["code"]:
                rules.append((code, "district", "wards", w, "", "", f"sanitation-ward-{w}", 10))
        elif how == "streetlights_by_neighborhood":
            for h in hoods["code"]:
                rules.append((code, "district", "neighborhoods", h, "", "", f"streetlights-{h}", 10))
        elif how == "nearest_needle_team":
            rules.append((code, "nearest", "", "", "", "needle-team-", "", 10))
        elif how == "isd_back_bay_parcels":
            rules.append((code, "parcel_attribute", "", "", "ward", "5", "isd-back-bay", 10))
    pd.DataFrame(rules, columns=["service_code", "strategy", "layer", "district_code", "attribute", "value",
                                 "crew_code", "priority"]).to_csv(HERE / "routing_rules.csv", index=False)
    say(f"routing_rules.csv: {len(rules)} rules")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=HERE.parent.parent / "shared" / "data" / "boston")
    args = parser.parse_args()
    src = args.source
    if not (src / "SOURCES.md").exists():
        raise SystemExit(f"no Boston data at {src} (pass --source)")
    services = yaml.safe_load((HERE / "services.yaml").read_text())
    boundary, wards, hoods, police = boundaries(src)
    parcel_gdf = parcels(src)
    cases = read_cases(src)
    gazetteer(cases, boundary, parcel_gdf)
    demo_requests(cases, boundary, services)
    crews_and_rules(wards, hoods, police, services)
    say("done")


if __name__ == "__main__":
    main()
