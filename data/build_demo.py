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
import glob
import gzip
import re
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "boston"
CITY_HALL = (42.3594, -71.0587)       # Boston's default point for cases with no real location
METRIC = 26986                        # NAD83 / Massachusetts Mainland (metres), for areas
STATE_PLANE_FT = 2249                 # what precincts/neighborhoods really are (they claim EPSG:4326)
SLIVER_M2 = 1000                      # boundary parts and holes smaller than this are artefacts
SAMPLE_REQUESTS = 15_000
MIN_PER_TYPE = 25                     # every catalogue category shows up on the demo map
SEED = 311
DATE_FMT = "%m/%d/%Y %I:%M:%S %p"


def say(message):
    print(f"[build_demo] {message}", flush=True)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


# ----------------------------------------------------------------------------------------------------------------
# Output helpers (deterministic bytes: no timestamps in gzip headers, stable ordering)

def _gzip_bytes(path, data):
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9,
                                                mtime=0) as gz:
        gz.write(data)


def _snap(gdf):
    """Coordinates on a 1e-6 degree grid (≈ 0.1 m), valid polygons, nothing empty."""
    out = gdf.copy()
    geom = shapely.set_precision(out.geometry.values, 1e-6, mode="valid_output")
    geom = shapely.make_valid(geom)
    # make_valid can leave GeometryCollections (polygon + stray line): keep the polygonal part
    geom = np.array([g if g.geom_type in ("Polygon", "MultiPolygon")
                     else shapely.unary_union([p for p in getattr(g, "geoms", []) if p.geom_type in
                                               ("Polygon", "MultiPolygon")]) for g in geom], dtype=object)
    out["geometry"] = geom
    return out[~out.geometry.is_empty & out.geometry.notna()]


def _geojson_bytes(gdf, layer_name):
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / f"{layer_name}.geojson"
        pyogrio.write_dataframe(gdf, tmp_path, driver="GeoJSON", layer=layer_name,
                                layer_options={"COORDINATE_PRECISION": 6, "RFC7946": "YES", "WRITE_NAME": "YES"})
        return tmp_path.read_bytes()


def write_geojson(gdf, name, gz=False):
    path = HERE / name
    data = _geojson_bytes(_snap(gdf), name.split(".")[0])
    if gz:
        _gzip_bytes(path, data)
    else:
        path.write_bytes(data)
    say(f"{name}: {len(gdf)} features, {path.stat().st_size / 1e6:.2f} MB")


def write_csv(df, name, gz=False):
    path = HERE / name
    text = df.to_csv(index=False, lineterminator="\n")
    if gz:
        _gzip_bytes(path, text.encode("utf-8"))
    else:
        path.write_text(text, encoding="utf-8")
    say(f"{name}: {len(df)} rows, {path.stat().st_size / 1e6:.2f} MB")


def area_km2(gdf):
    return gdf.geometry.to_crs(METRIC).area.div(1e6).round(3)


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


# ----------------------------------------------------------------------------------------------------------------
# 9. The service catalogue

YES_NO = [{"key": "yes", "name": "Yes"}, {"key": "no", "name": "No"}]
YES_NO_UNKNOWN = YES_NO + [{"key": "unknown", "name": "Don't know"}]


def q(code, datatype, description, required=False, values=None):
    """One Open311 attribute definition (order is filled in from the position in the list)."""
    attr = {"code": code, "datatype": datatype, "required": required, "description": description,
            "datatype_description": None}
    if values is not None:
        attr["values"] = [v if isinstance(v, dict) else {"key": slug(v).replace("-", "_"), "name": v}
                          for v in values]
    return attr


# Routing kinds (see crews_and_rules): police -> animal control officer of the police district,
# ward -> sanitation crew of the ward, hood -> street-light crew of the neighbourhood,
# needle -> nearest on-duty needle team, isd_parcels -> ward-5 parcels to their own inspector.
# sla: hours, only where the City set no usable target in 2015 (or its target is not a service level).
CATALOGUE = [
    # --- Animal issues
    dict(code="animal-generic", name="Animal Generic Request", default_crew="animal-control-dispatch",
         routing="police", sla=72,
         description="A stray, loose, injured or dangerous animal that animal control should see to.",
         keywords=["dog", "stray", "stray dog", "loose dog", "cat", "animal", "barking", "coyote",
                   "injured animal", "dog bite"],
         attributes=[q("animal_type", "singlevaluelist", "What kind of animal?", True,
                       [{"key": "dog", "name": "Dog"}, {"key": "cat", "name": "Cat"},
                        {"key": "wildlife", "name": "Wildlife"}, {"key": "other", "name": "Other"}]),
                     q("aggressive", "singlevaluelist", "Is it aggressive?", False, YES_NO_UNKNOWN),
                     q("animal_count", "number", "How many animals?")]),
    dict(code="animal-found", name="Animal Found", default_crew="animal-control-dispatch", routing="police", sla=72,
         description="You found a pet that seems to be lost.",
         keywords=["found dog", "found cat", "found pet", "lost pet found"],
         attributes=[q("animal_type", "singlevaluelist", "What kind of animal?", True, ["Dog", "Cat", "Other"]),
                     q("markings", "text", "Colour, collar, tags or other markings")]),
    dict(code="animal-lost", name="Animal Lost", default_crew="animal-control-dispatch", routing="police", sla=72,
         description="Your pet is lost and you want animal control to look out for it.",
         keywords=["lost dog", "lost cat", "lost pet", "missing dog", "missing cat"],
         attributes=[q("animal_type", "singlevaluelist", "What kind of animal?", True, ["Dog", "Cat", "Other"]),
                     q("last_seen", "datetime", "When was it last seen?"),
                     q("markings", "text", "Colour, collar, tags or other markings")]),
    dict(code="animal-noise", name="Animal Noise Disturbances", default_crew="animal-control-dispatch",
         routing="police", sla=120,
         description="An animal making noise for a long time (a barking dog, a rooster).",
         keywords=["barking", "barking dog", "noisy animal", "rooster"],
         attributes=[q("since", "datetime", "Since when has it been going on?")]),
    dict(code="dead-animal", name="Pick up Dead Animal", default_crew="animal-control-dispatch", routing="police",
         description="A dead animal to be picked up from a street, sidewalk or other public place.",
         keywords=["dead animal", "dead animal pick-up", "dead animal pickup", "raccoon", "dead raccoon",
                   "carcass", "dead bird", "dead cat", "dead dog", "roadkill", "dead squirrel"],
         attributes=[q("animal_size", "singlevaluelist", "How big is the animal?", True,
                       [{"key": "small", "name": "Small (rat, bird)"},
                        {"key": "medium", "name": "Medium (cat, raccoon)"},
                        {"key": "large", "name": "Large (dog, deer)"}]),
                     q("on_private_property", "singlevaluelist", "Is it on private property?", False, YES_NO)]),
    # --- Street lights
    dict(code="street-light-outage", name="Street Light Outages", default_crew="streetlights-dispatch",
         routing="hood",
         description="A street light that is out, flickering or on during the day.",
         keywords=["streetlight out", "street light out", "street light", "streetlight", "light out", "lamp out",
                   "dark street"],
         attributes=[q("pole_number", "string", "Number on the pole, if you can see it"),
                     q("problem", "singlevaluelist", "What is wrong with the light?", True,
                       [{"key": "out", "name": "Out"}, {"key": "flickering", "name": "Flickering"},
                        {"key": "day_burner", "name": "On during the day"}]),
                     q("lights_out", "number", "How many lights in a row are out?")]),
    dict(code="street-light-knockdown", name="Street Light Knock Downs", default_crew="streetlights-dispatch",
         routing="hood",
         description="A street light pole knocked down or leaning dangerously.",
         keywords=["light pole down", "pole knocked down", "leaning pole", "street light down", "knocked over pole"],
         attributes=[q("wires_exposed", "singlevaluelist", "Are wires exposed?", True, YES_NO_UNKNOWN)]),
    dict(code="street-light-system-failure", name="Major System Failure", default_crew="streetlights-dispatch",
         routing="hood",
         description="A whole street or block of street lights out at once.",
         keywords=["all lights out", "whole street dark", "lights out on block", "street lights out"],
         attributes=[q("lights_out", "number", "About how many lights are out?"),
                     q("since", "datetime", "Since when?")]),
    dict(code="general-lighting", name="General Lighting Request", default_crew="streetlights-dispatch",
         routing="hood",
         description="Other street-lighting requests: park paths, alleys, a new or brighter light.",
         keywords=["lighting", "more light", "dark alley", "park light", "new street light"],
         attributes=[q("details", "text", "What lighting is needed, and where?")]),
    # --- Needles
    dict(code="needle-pickup", name="Needle Pickup", default_crew="hotline-dispatch", routing="needle", sla=4,
         sensitive=True,
         description="Discarded needles or syringes in a public place. Do not touch them.",
         keywords=["needle", "needles", "syringe", "syringes", "sharps", "drug paraphernalia"],
         attributes=[q("needle_count", "number", "About how many needles?"),
                     q("location_type", "singlevaluelist", "Where are they?", True,
                       [{"key": "sidewalk", "name": "Sidewalk"}, {"key": "park", "name": "Park or playground"},
                        {"key": "school", "name": "Near a school"}, {"key": "other", "name": "Other"}])]),
    # --- Graffiti
    dict(code="graffiti", name="Graffiti Removal", default_crew="pwd-dispatch", routing="ward",
         description="Graffiti on public or private property.",
         keywords=["graffiti", "tag", "tagging", "spray paint", "vandalism"],
         attributes=[q("surface", "multivaluelist", "What is painted on?", True,
                       [{"key": "wall", "name": "Building wall"}, {"key": "sign", "name": "Sign"},
                        {"key": "mailbox", "name": "Mailbox"}, {"key": "pole", "name": "Pole"},
                        {"key": "other", "name": "Other"}]),
                     q("offensive", "singlevaluelist", "Is it offensive or hateful?", False, YES_NO)]),
    # --- Environmental / rodents
    dict(code="rodent-activity", name="Rodent Activity", default_crew="isd-inspections",
         description="Rats seen outside, burrows or droppings in yards, alleys or parks.",
         keywords=["rat", "rats", "rodent", "rodents", "mice", "mouse", "burrow", "rat holes"],
         attributes=[q("seen_when", "singlevaluelist", "When do you see them?", False, ["Day", "Night", "Both"]),
                     q("signs", "multivaluelist", "What have you seen?", False,
                       ["Live rats", "Burrows", "Droppings", "Gnawed trash bags"])]),
    dict(code="mice-infestation", name="Mice Infestation - Residential", default_crew="isd-inspections",
         sensitive=True,
         description="Mice in a rented home that the landlord does not deal with.",
         keywords=["mice", "mouse", "mice in apartment", "rodents in apartment"],
         attributes=[q("unit", "string", "Apartment or unit number")]),
    dict(code="trash-vacant-lot", name="Trash on Vacant Lot", default_crew="isd-inspections",
         description="Trash or overgrowth on a vacant lot.",
         keywords=["vacant lot", "empty lot", "overgrown lot", "trash on lot"],
         attributes=[]),
    dict(code="illegal-dumping", name="Illegal Dumping", default_crew="isd-inspections", routing="ward",
         description="Trash, furniture or construction debris dumped where it should not be.",
         keywords=["dumping", "illegal dumping", "dumped mattress", "dumped furniture", "dumped trash",
                   "dumped tires"],
         attributes=[q("items", "multivaluelist", "What was dumped?", True,
                       [{"key": "furniture", "name": "Furniture"}, {"key": "mattress", "name": "Mattress"},
                        {"key": "tires", "name": "Tires"}, {"key": "construction", "name": "Construction debris"},
                        {"key": "bags", "name": "Trash bags"}]),
                     q("seen_at", "datetime", "When did you see it being dumped (if you did)?")]),
    dict(code="improper-trash-storage", name="Improper Storage of Trash (Barrels)", default_crew="pwd-dispatch",
         routing="ward", sla=72,
         description="Trash left out in bags or open barrels, or out on the wrong day.",
         keywords=["trash barrels", "trash out early", "open trash", "trash bags on sidewalk"],
         attributes=[]),
    dict(code="overflowing-dumpster", name="Overflowing or Un-kept Dumpster", default_crew="pwd-dispatch",
         routing="ward",
         description="A dumpster that is overflowing, open or not emptied.",
         keywords=["dumpster", "overflowing dumpster", "dumpster full"],
         attributes=[]),
    # --- Streets, sidewalks, cleaning
    dict(code="pothole", name="Pothole Repair (Internal)", default_crew="pwd-dispatch", routing="ward", sla=72,
         description="A pothole in the road.",
         keywords=["pothole", "potholes", "hole in road", "road hole", "crater"],
         attributes=[q("size", "singlevaluelist", "How big is it?", False,
                       [{"key": "small", "name": "Smaller than a plate"}, {"key": "medium", "name": "Up to a tyre"},
                        {"key": "large", "name": "Larger"}])]),
    dict(code="sidewalk-repair", name="Sidewalk Repair", default_crew="pwd-dispatch",
         description="A broken, cracked or uneven sidewalk to be repaired.",
         keywords=["sidewalk", "broken sidewalk", "cracked sidewalk", "uneven sidewalk", "sidewalk repair"],
         attributes=[q("material", "singlevaluelist", "What is the sidewalk made of?", False,
                       ["Concrete", "Brick", "Asphalt", "Don't know"]),
                     q("details", "text", "Describe the damage")]),
    dict(code="sidewalk-make-safe", name="Sidewalk Repair (Make Safe)", default_crew="pwd-dispatch",
         description="A sidewalk defect that is a trip hazard and needs making safe quickly.",
         keywords=["trip hazard", "sidewalk hole", "dangerous sidewalk", "raised slab"],
         attributes=[q("hazard", "text", "Describe the hazard")]),
    dict(code="empty-litter-basket", name="Empty Litter Basket", default_crew="pwd-dispatch", routing="ward",
         description="A public litter basket that is full or overflowing.",
         keywords=["litter basket", "trash can", "overflowing bin", "full trash can", "garbage can",
                   "public trash can"],
         attributes=[]),
    dict(code="street-cleaning", name="CE Collection", default_crew="pwd-dispatch", routing="ward",
         description="Litter, debris or spilled trash on a street to be cleaned up.",
         keywords=["street cleaning", "litter", "debris", "trash on street", "spilled trash"],
         attributes=[]),
    dict(code="bulk-item-pickup", name="Schedule a Bulk Item Pickup SS", default_crew="pwd-dispatch", routing="ward",
         sla=168,
         description="Book a pick-up of furniture, mattresses or appliances on your trash day.",
         keywords=["bulk item", "bulk pickup", "couch", "mattress pickup", "furniture pickup", "appliance"],
         attributes=[q("items", "multivaluelist", "What will you put out?", True,
                       ["Furniture", "Mattress", "Appliance", "Other"]),
                     q("item_count", "number", "How many items?")]),
    dict(code="unshoveled-sidewalk", name="Unshoveled Sidewalk", default_crew="pwd-dispatch", routing="ward", sla=48,
         description="A sidewalk not cleared of snow or ice.",
         keywords=["snow", "ice", "unshoveled", "sidewalk not shoveled", "icy sidewalk", "unshovelled"],
         attributes=[q("property_type", "singlevaluelist", "In front of what?", False,
                       ["Home", "Business", "Vacant lot", "City property"])]),
    dict(code="misc-snow", name="Misc. Snow Complaint", default_crew="pwd-dispatch", routing="ward", sla=48,
         description="Other snow problems: a blocked crosswalk, a snow pile, an unplowed corner.",
         keywords=["snow pile", "snow complaint", "blocked crosswalk", "snow"],
         attributes=[q("details", "text", "What is the problem?")]),
    dict(code="snow-plowing", name="Request for Snow Plowing (Emergency Responder)", default_crew="pwd-dispatch",
         routing="ward", sla=12, public=False,
         description="A street that needs plowing for emergency access (staff and responders only).",
         keywords=["plow", "snow plow", "unplowed street"],
         attributes=[]),
    dict(code="space-savers", name="Space Savers", default_crew="pwd-dispatch", routing="ward",
         description="Space savers left out more than 48 hours after a snow emergency ended.",
         keywords=["space saver", "space savers", "parking chair", "cone in parking space"],
         attributes=[]),
    # --- Vehicles, bicycles, signs and signals
    dict(code="abandoned-vehicle", name="Abandoned Vehicles", default_crew="transportation-dispatch",
         description="A vehicle that has not moved for a long time or has no plates.",
         keywords=["abandoned car", "abandoned vehicle", "junk car", "no plates", "car not moved"],
         attributes=[q("make", "string", "Make and colour of the vehicle"),
                     q("plate", "string", "Licence plate, if any"),
                     q("last_moved", "datetime", "When did it last move?")]),
    dict(code="abandoned-bicycle", name="Abandoned Bicycle", default_crew="transportation-dispatch", sla=336,
         description="A bicycle left locked and stripped for a long time.",
         keywords=["abandoned bike", "abandoned bicycle", "bike", "stripped bike"],
         attributes=[q("locked_to", "singlevaluelist", "What is it locked to?", False,
                       ["Bike rack", "Sign pole", "Parking meter", "Fence or railing", "Other"])]),
    dict(code="missing-sign", name="Missing Sign", default_crew="transportation-dispatch",
         description="A traffic or street sign that is missing.",
         keywords=["missing sign", "stop sign missing", "street sign gone", "sign down", "sign missing"],
         attributes=[q("sign_type", "singlevaluelist", "Which sign?", True,
                       [{"key": "stop", "name": "Stop"}, {"key": "street_name", "name": "Street name"},
                        {"key": "parking", "name": "Parking"}, {"key": "other", "name": "Other"}])]),
    dict(code="sign-repair", name="Sign Repair", default_crew="transportation-dispatch",
         description="A damaged, faded or turned traffic sign.",
         keywords=["sign repair", "damaged sign", "bent sign", "faded sign", "turned sign"],
         attributes=[q("sign_type", "singlevaluelist", "Which sign?", False,
                       [{"key": "stop", "name": "Stop"}, {"key": "street_name", "name": "Street name"},
                        {"key": "parking", "name": "Parking"}, {"key": "other", "name": "Other"}])]),
    dict(code="new-sign-marking", name="New Sign  Crosswalk or Pavement Marking", default_crew="transportation-dispatch",
         description="Ask for a new sign, crosswalk or road marking.",
         keywords=["new sign", "crosswalk", "pavement marking", "road marking", "new crosswalk"],
         attributes=[q("request", "text", "What should be added, and why?", True)]),
    dict(code="traffic-signal-repair", name="Traffic Signal Repair", default_crew="transportation-dispatch", sla=24,
         description="A traffic signal that is out, stuck or timed wrongly.",
         keywords=["traffic light", "signal out", "traffic signal", "stuck light", "walk signal",
                   "pedestrian signal"],
         attributes=[q("problem", "singlevaluelist", "What is wrong?", True,
                       [{"key": "dark", "name": "All dark"}, {"key": "flashing", "name": "Flashing"},
                        {"key": "stuck", "name": "Stuck"}, {"key": "pedestrian", "name": "Pedestrian signal"}])]),
    dict(code="traffic-signal-inspection", name="Traffic Signal Inspection", default_crew="transportation-dispatch",
         public=False,
         description="Routine inspection of a traffic signal (staff work order).",
         keywords=["signal inspection"],
         attributes=[]),
    dict(code="parking-meter-repair", name="Parking Meter Repairs", default_crew="transportation-dispatch",
         description="A parking meter that is broken or does not take payment.",
         keywords=["parking meter", "broken meter", "meter broken", "meter not working"],
         attributes=[q("meter_number", "string", "Meter number (on the meter)")]),
    # --- Trees and parks
    dict(code="tree-emergency", name="Tree Emergencies", default_crew="parks-dispatch",
         description="A fallen tree or large limb blocking a street or sidewalk, or on wires.",
         keywords=["tree down", "fallen tree", "fallen limb", "branch down", "tree on wires", "tree emergency"],
         attributes=[q("blocking", "multivaluelist", "What is it blocking?", True,
                       [{"key": "street", "name": "Street"}, {"key": "sidewalk", "name": "Sidewalk"},
                        {"key": "wires", "name": "Wires"}, {"key": "nothing", "name": "Nothing"}])]),
    dict(code="tree-maintenance", name="Tree Maintenance Requests", default_crew="parks-dispatch",
         description="Pruning or inspection of a street tree.",
         keywords=["tree pruning", "trim tree", "dead tree", "tree maintenance", "prune"],
         attributes=[]),
    dict(code="new-tree", name="New Tree Requests", default_crew="parks-dispatch",
         description="Ask for a new street tree in front of your home.",
         keywords=["new tree", "plant a tree", "street tree", "tree planting"],
         attributes=[]),
    dict(code="ground-maintenance", name="Ground Maintenance", default_crew="parks-dispatch",
         description="Mowing, litter or upkeep in a park.",
         keywords=["park", "grass", "mowing", "playground", "park litter"],
         attributes=[]),
    dict(code="park-equipment", name="Equipment Repair", default_crew="parks-dispatch",
         description="Broken park equipment: benches, swings, fences, water fountains.",
         keywords=["broken swing", "park bench", "playground equipment", "water fountain", "park fence"],
         attributes=[q("equipment", "singlevaluelist", "What is broken?", False,
                       ["Playground", "Bench", "Fence", "Water fountain", "Court or field", "Other"])]),
    # --- Water and sewer
    dict(code="catchbasin", name="Catchbasin", default_crew="bwsc-dispatch", sla=72,
         description="A clogged or broken storm drain.",
         keywords=["catch basin", "catchbasin", "storm drain", "clogged drain", "flooding"],
         attributes=[]),
    dict(code="fire-hydrant", name="Fire Hydrant", default_crew="bwsc-dispatch", sla=24,
         description="A leaking, damaged or open fire hydrant.",
         keywords=["hydrant", "fire hydrant", "open hydrant", "leaking hydrant"],
         attributes=[]),
    dict(code="watermain-break", name="Watermain Break", default_crew="bwsc-dispatch", sla=4,
         description="Water coming up through the street or sidewalk.",
         keywords=["water main", "watermain", "water main break", "water in street", "burst pipe"],
         attributes=[]),
    # --- Buildings and housing (Inspectional Services)
    dict(code="building-inspection", name="Building Inspection Request", default_crew="isd-inspections",
         routing="isd_parcels",
         description="Unsafe building work, work without a permit, or a building that needs inspecting.",
         keywords=["building inspection", "construction", "permit", "unsafe building", "no permit"],
         attributes=[q("details", "text", "What did you see?")]),
    dict(code="unsafe-conditions", name="Unsafe Dangerous Conditions", default_crew="isd-inspections",
         routing="isd_parcels",
         description="A building in a dangerous condition (falling debris, collapse risk).",
         keywords=["dangerous building", "collapse", "falling bricks", "unsafe", "falling debris"],
         attributes=[]),
    dict(code="construction-noise", name="Work Hours-Loud Noise Complaints", default_crew="isd-inspections",
         routing="isd_parcels",
         description="Construction work making noise outside the permitted hours.",
         keywords=["construction noise", "loud construction", "jackhammer", "early construction", "noise"],
         attributes=[q("started_at", "datetime", "When did the noise start?"),
                     q("details", "text", "What kind of work?")]),
    dict(code="heat", name="Heat - Excessive  Insufficient", default_crew="isd-inspections", sensitive=True,
         description="No heat, or too much heat, in a rented home.",
         keywords=["no heat", "heat", "cold apartment", "heating", "landlord heat", "too hot"],
         attributes=[q("unit", "string", "Apartment or unit number"),
                     q("indoor_temperature", "number", "Temperature inside, if you know it (°F)")]),
    dict(code="bed-bugs", name="Bed Bugs", default_crew="isd-inspections", sensitive=True,
         description="Bed bugs in a rented home.",
         keywords=["bed bugs", "bedbugs", "bugs"],
         attributes=[]),
    dict(code="living-conditions", name="Unsatisfactory Living Conditions", default_crew="isd-inspections",
         sensitive=True,
         description="Problems in a rented home the landlord does not fix (leaks, mould, broken fixtures).",
         keywords=["landlord", "mold", "mould", "leak", "living conditions", "apartment repairs"],
         attributes=[q("problems", "multivaluelist", "What is wrong?", False,
                       ["Leak", "Mould", "Broken windows or doors", "Plumbing", "Electrical", "Other"])]),
    dict(code="squalid-living", name="Squalid Living Conditions", default_crew="isd-inspections", sensitive=True,
         description="A home in a filthy or hoarded condition that may put people at risk.",
         keywords=["squalid", "hoarding", "hoarder", "filthy apartment", "unsanitary home"],
         attributes=[]),
    # --- Recycling and general
    dict(code="recycling-cart", name="Request for Recycling Cart", default_crew="pwd-dispatch",
         description="A new or replacement recycling cart.",
         keywords=["recycling cart", "recycling bin", "blue bin", "recycling"],
         attributes=[q("cart_size", "singlevaluelist", "Which size?", True,
                       [{"key": "35", "name": "35 gallons"}, {"key": "64", "name": "64 gallons"}])]),
    dict(code="general-comments", name="General Comments For a Program or Policy", default_crew="hotline-dispatch",
         description="A comment or suggestion about a City program or policy.",
         keywords=["comment", "suggestion", "complaint", "feedback"],
         attributes=[q("comment", "text", "Your comment", True)]),
]


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
                              | ({"values": a["values"]} if "values" in a else {}))
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
        "# The demo city's service catalogue, written by data/build_demo.py (edit CATALOGUE there, then rebuild).",
        "# name: the City of Boston 311 TYPE exactly (boston-csv rows map to services by it);",
        "# group / department: the TYPE's most common REASON / SUBJECT in the 2015 cases.",
        "# sla_hours: the City's 2015 median TARGET_DT - OPEN_DT where it set a target, else a value set here.",
        "# public: false = internal only (not offered to residents or Open311);",
        "# sensitive: true = shown only coarsened on public outputs, photos never public.",
        "# attributes: Open311 GeoReport v2 attribute definitions (the questions an agent asks).",
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
    text = "\n".join(lines) + "\n"
    assert yaml.safe_load(text) == services, "services.yaml does not round-trip"
    (HERE / "services.yaml").write_text(text, encoding="utf-8")
    say(f"services.yaml: {len(services)} services "
        f"({sum(not s['public'] for s in services)} internal, {sum(s['sensitive'] for s in services)} sensitive)")


# ----------------------------------------------------------------------------------------------------------------
# 10-11. Crews and routing rules

DEPARTMENT_CREWS = [
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
    ("hotline-dispatch", "Mayor's Hotline – Dispatch", "Mayor's 24 Hour Hotline", "hotline@example.org"),
]
NEEDLE_TEAMS = {"needle-team-1": (42.3334, -71.0735),     # South End / Newmarket
                "needle-team-2": (42.3601, -71.0589),     # Government Center
                "needle-team-3": (42.3163, -71.0650)}     # Dorchester, Uphams Corner
ISD_PARCEL_WARD = "5"                                     # Back Bay / Beacon Hill parcels -> isd-back-bay
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
    say(f"  layers: " + ", ".join(f"{k} {len(v)}" for k, v in layers.items()) + f", parcels {len(parcel_gdf)}")

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
