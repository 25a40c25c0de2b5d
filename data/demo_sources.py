"""Demo city, part 1: the Boston sources read and cleaned — districts, parcels, the 2015 cases, the
address gazetteer and the sample of demo requests (steps 1-8 of build_demo.py)."""
import glob
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely


from demo_common import (CITY_HALL, HERE, METRIC, MIN_PER_TYPE, SAMPLE_REQUESTS, SEED, SLIVER_M2, STATE_PLANE_FT,
                         _snap, area_km2, say, slug, write_csv, write_geojson)

# ----------------------------------------------------------------------------------------------------------------
# 1-5. Boundary and districts


def boundaries(src):
    b = src / "boundaries"
    wards = gpd.read_file(b / "wards.geojson")
    # These two say EPSG:4326 (the GeoJSON default) but hold Massachusetts State Plane feet (SOURCES.md).
    precincts = gpd.read_file(b / "precincts.geojson").set_crs(STATE_PLANE_FT, allow_override=True).to_crs(4326)
    hoods = gpd.read_file(b / "neighborhoods.geojson").set_crs(STATE_PLANE_FT, allow_override=True).to_crs(4326)
    police = gpd.read_file(b / "police_districts.geojson")
    for name, layer in (("precincts", precincts), ("neighborhoods", hoods)):
        minx, miny, maxx, maxy = layer.total_bounds
        assert -71.3 < minx < maxx < -70.8 and 42.1 < miny < maxy < 42.5, f"{name}: CRS fix failed"

    precincts["code"] = precincts["WARD_PRECINCT"].astype(str).str.zfill(4)
    precincts["ward"] = precincts["code"].str[:2].astype(int).astype(str)
    precincts["precinct"] = precincts["code"].str[2:].str.lstrip("0")          # "3", "2A" (0502A)
    precincts["name"] = "Ward " + precincts["ward"] + " Precinct " + precincts["precinct"]
    precincts["area_km2"] = area_km2(precincts)
    precincts = precincts[["code", "name", "ward", "precinct", "area_km2", "geometry"]].sort_values("code")

    wards["code"] = wards["WARD"].astype(int).astype(str)
    wards["name"] = "Ward " + wards["code"]
    wards["ward"] = wards["WARD"].astype(int)
    wards["precincts"] = wards["code"].map(precincts.groupby("ward").size()).fillna(0).astype(int)
    wards["area_km2"] = area_km2(wards)
    wards = wards[["code", "name", "ward", "precincts", "area_km2", "geometry"]].sort_values("ward")

    hoods["code"] = hoods["Name"].map(slug)
    hoods["name"] = hoods["Name"].astype(str)
    hoods["neighborhood_id"] = hoods["Neighborhood_ID"].astype(str)
    hoods["acres"] = hoods["Acres"].astype(float).round(1)
    hoods["area_km2"] = area_km2(hoods)
    hoods = hoods[["code", "name", "neighborhood_id", "acres", "area_km2", "geometry"]].sort_values("code")

    police["code"] = police["DISTRICT"].astype(str)
    police["name"] = "District " + police["code"].str[0] + "-" + police["code"].str[1:]
    police["bpd_area"] = police["code"].str[0]                     # BPD area A-E
    police["area_km2"] = area_km2(police)
    police = police[["code", "name", "bpd_area", "area_km2", "geometry"]].sort_values("code")

    for name, layer, n in (("wards", wards, 22), ("precincts", precincts, 255), ("neighborhoods", hoods, 26),
                           ("police_districts", police, 12)):
        assert len(layer) == n and layer["code"].is_unique, f"{name}: {len(layer)} features / duplicate codes"

    # City boundary: the wards dissolved, cleaned of the slivers and pinholes between ward polygons.
    city = shapely.make_valid(wards.geometry.union_all()).buffer(0)
    parts = list(getattr(city, "geoms", [city]))

    def m2(geom):
        return gpd.GeoSeries([geom], crs=4326).to_crs(METRIC).area.iloc[0]

    kept, dropped_parts, dropped_holes = [], 0, 0
    for part in parts:
        if m2(part) < SLIVER_M2:
            dropped_parts += 1
            continue
        holes = [h for h in part.interiors if m2(shapely.Polygon(h)) >= SLIVER_M2]
        dropped_holes += len(part.interiors) - len(holes)
        kept.append(shapely.Polygon(part.exterior, holes))
    kept.sort(key=lambda p: -p.area)
    boundary = gpd.GeoDataFrame({"code": ["boston"], "name": ["City of Boston"], "state": ["MA"]},
                                geometry=[shapely.MultiPolygon(kept)], crs=4326)
    boundary["area_km2"] = area_km2(boundary)
    say(f"city boundary: {len(kept)} polygons ({dropped_parts} sliver parts and {dropped_holes} holes "
        f"< {SLIVER_M2} m² dropped), {boundary['area_km2'].iloc[0]} km²")

    write_geojson(boundary, "city_boundary.geojson")
    write_geojson(wards, "wards.geojson")
    write_geojson(precincts, "precincts.geojson")
    write_geojson(hoods, "neighborhoods.geojson")
    write_geojson(police, "police_districts.geojson")
    # Read back what was written, so the checks below see exactly the shipped geometry.
    return {name: gpd.read_file(HERE / f"{name}.geojson")
            for name in ("city_boundary", "wards", "precincts", "neighborhoods", "police_districts")}


# ----------------------------------------------------------------------------------------------------------------
# 6. Parcels

def parcels(src):
    frames = [gpd.read_file(p) for p in sorted(glob.glob(str(src / "parcels_fy2013" / "ward_*.geojson")))]
    raw = pd.concat(frames, ignore_index=True)
    p = gpd.GeoDataFrame({"parcel_id": raw["PID_LONG"].astype(str).str.strip(),
                          "ward": raw["WARD"].astype(int).astype(str),
                          "wpd": raw["WPD"].astype(str).str.strip()}, geometry=raw.geometry, crs=4326)
    p = p.sort_values(["parcel_id", "wpd"], kind="stable").reset_index(drop=True)
    dup = int(p["parcel_id"].duplicated().sum())
    snapped = _snap(p)
    say(f"parcels: {len(raw)} read from {len(frames)} ward files, {dup} duplicate ids, "
        f"{len(p) - len(snapped)} empty after snapping")
    write_geojson(snapped, "parcels.geojson.gz", gz=True)
    return gpd.read_file(f"/vsigzip/{HERE / 'parcels.geojson.gz'}")


# ----------------------------------------------------------------------------------------------------------------
# 7. 2015 cases and the address gazetteer

def read_cases(src):
    files = sorted(glob.glob(str(src / "311_cases_2015_by_type" / "*.csv")))
    cases = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in files], ignore_index=True)
    cases["_lat"] = pd.to_numeric(cases["LATITUDE"], errors="coerce")
    cases["_lon"] = pd.to_numeric(cases["LONGITUDE"], errors="coerce")
    cases["_placeholder"] = (cases["_lat"].round(4) == CITY_HALL[0]) & (cases["_lon"].round(4) == CITY_HALL[1])
    say(f"2015 cases: {len(cases)} rows from {len(files)} files, "
        f"{int(cases['_placeholder'].sum())} on the City Hall placeholder point")
    return cases


def inside(boundary, lon, lat):
    geom = boundary.geometry.iloc[0]
    shapely.prepare(geom)
    ok = np.isfinite(lon) & np.isfinite(lat)
    out = np.zeros(len(lon), dtype=bool)
    out[ok] = shapely.contains_xy(geom, lon[ok], lat[ok])
    return out


NUMBER = re.compile(r"^(\d+[A-Za-z]*(?:-\d+[A-Za-z]*)?)\s+(\S.*)$")
NUMBER_GLUED = re.compile(r"^(\d+)-([A-Za-z].*)$")        # "140-MT Vernon St"
NUMBER_SPACED = re.compile(r"^(\d+) ([A-Za-z]-\d+[A-Za-z]*)\s+(\S.*)$")   # "190 A-192 Sydney St" -> "190A-192"


def split_location(location):
    """'615 E Fourth St  South Boston  MA  02127' -> (number, street, city, zip); fields separated by 2+ spaces."""
    parts = re.split(r"\s{2,}", location.strip())
    zip_code = parts.pop()[:5] if parts and re.fullmatch(r"\d{5}(-\d{4})?", parts[-1]) else ""
    if parts and parts[-1] == "MA":
        parts.pop()
    city = parts.pop() if len(parts) > 1 else ""
    street_part = " ".join(" ".join(parts).split())
    m = NUMBER_SPACED.match(street_part)
    if m:
        return m.group(1) + m.group(2), m.group(3), city, zip_code
    m = NUMBER.match(street_part) or NUMBER_GLUED.match(street_part)
    if not m:
        return None
    return m.group(1), m.group(2), city, zip_code


def gazetteer(cases, boundary, parcel_gdf):
    addr = cases[(cases["Property_Type"] == "Address") & ~cases["_placeholder"]
                 & cases["_lat"].notna() & cases["_lon"].notna()].copy()
    addr = addr[inside(boundary, addr["_lon"].to_numpy(), addr["_lat"].to_numpy())]
    split = {loc: split_location(loc) for loc in sorted(addr["Location"].unique())}
    bad = sorted(loc for loc, s in split.items() if s is None)
    if bad:
        say(f"gazetteer: {len(bad)} locations without a house number skipped, e.g. {bad[:3]}")
    addr = addr[addr["Location"].map(lambda loc: split[loc] is not None)]
    fields = pd.DataFrame([split[loc] for loc in addr["Location"]], index=addr.index,
                          columns=["number", "street", "city", "zip"])
    addr = addr.join(fields)
    addr["address"] = (addr["number"] + " " + addr["street"] + ", " + addr["city"] + ", MA "
                       + addr["zip"]).str.strip()
    addr["sam"] = pd.to_numeric(addr["Property_ID"], errors="coerce")

    # One point per address: the most frequent one; ties go to the point nearest the median of all its points.
    counts = addr.groupby(["address", "_lat", "_lon"]).size().rename("n").reset_index()
    median = addr.groupby("address")[["_lat", "_lon"]].median().add_suffix("_median")
    counts = counts.join(median, on="address")
    counts["d"] = (counts["_lat"] - counts["_lat_median"]) ** 2 + (counts["_lon"] - counts["_lon_median"]) ** 2
    multi = int((counts.groupby("address").size() > 1).sum())
    best = counts.sort_values(["address", "n", "d", "_lat", "_lon"], ascending=[True, False, True, True, True]) \
        .drop_duplicates("address")[["address", "_lat", "_lon"]]
    # SAM id: the most frequent at that point (else of the address), the smallest on a tie
    at_point = addr.merge(best, on=["address", "_lat", "_lon"])
    sam = pd.concat([at_point.assign(w=0), addr.assign(w=1)]).dropna(subset=["sam"])
    sam = sam.groupby(["address", "w", "sam"]).size().rename("n").reset_index() \
        .sort_values(["address", "w", "n", "sam"], ascending=[True, True, False, True]).drop_duplicates("address")
    sam_id = sam.set_index("address")["sam"].astype("int64").astype(str)
    fields = addr.drop_duplicates("address").set_index("address")[["number", "street", "city", "zip"]]
    out = best.set_index("address").join(fields)
    out["lat"], out["lon"] = out["_lat"].round(6), out["_lon"].round(6)
    out["sam_id"] = sam_id.reindex(out.index).fillna("")
    out = out.reset_index()
    pts = gpd.GeoDataFrame(out[[]], geometry=gpd.points_from_xy(out["lon"], out["lat"]), crs=4326)
    hit = gpd.sjoin(pts, parcel_gdf[["parcel_id", "geometry"]], how="inner", predicate="within")
    hit = hit.reset_index().sort_values(["index", "parcel_id"]).drop_duplicates("index").set_index("index")
    out["parcel_id"] = hit["parcel_id"].reindex(out.index).fillna("")
    out = out[["address", "number", "street", "city", "zip", "lat", "lon", "parcel_id", "sam_id"]]
    say(f"gazetteer: {len(out)} addresses from {len(addr)} case rows ({multi} with differing points: most "
        f"frequent point kept), {(out['parcel_id'] != '').sum()} inside a parcel")
    write_csv(out, "addresses.csv.gz", gz=True)
    return out


# ----------------------------------------------------------------------------------------------------------------
# 8. Demo requests: a stratified sample of the real 2015 cases, original columns untouched

def demo_requests(cases, boundary, names):
    usable = cases[cases["TYPE"].isin(names) & ~cases["_placeholder"]]
    usable = usable[inside(boundary, usable["_lon"].to_numpy(), usable["_lat"].to_numpy())]
    sizes = usable.groupby("TYPE").size()
    # proportional allocation with a floor, the share solved so that the total is about SAMPLE_REQUESTS
    lo, hi = 0.0, 1.0
    for _ in range(60):
        share = (lo + hi) / 2
        total = np.minimum(sizes, np.maximum(MIN_PER_TYPE, (sizes * share).round())).sum()
        lo, hi = (share, hi) if total < SAMPLE_REQUESTS else (lo, share)
    take = np.minimum(sizes, np.maximum(MIN_PER_TYPE, (sizes * share).round())).astype(int)
    parts = [g.sample(n=int(take[t]), random_state=SEED) for t, g in usable.groupby("TYPE", sort=True)]
    sample = pd.concat(parts).sort_values("CASE_ENQUIRY_ID", kind="stable")
    original = [c for c in cases.columns if not c.startswith("_")]
    sample = sample[original].rename(columns={"Unnamed: 0": ""})      # the files' unnamed index column
    write_csv(sample, "demo_requests.csv.gz", gz=True)
    return sample
