"""Dashboard datasets (gis.analytics with the page's filters), their CSV form and server-side SVG charts."""
import csv
import io
from decimal import Decimal

from gis import analytics
from gis.errors import InvalidInput, NotFound

DATASETS = ("over_time", "districts", "hot_spots", "top_categories", "crews")
MAPS = ("districts", "hot_spots")


def options(conn, args):
    """(filters, interval, district layer, hot-spot cell) from the query string, the filters checked
    against the city's layers and catalogue (an unknown district or category is an error, not zeros)."""
    f = analytics.resolve(conn, analytics.parse_filters(args))
    interval = args.get("interval") or "week"
    layer = args.get("layer") or "wards"
    cell = args.get("cell") or 250
    return f, interval, layer, cell


def dataset(conn, name, args, geometry=False):
    f, interval, layer, cell = options(conn, args)
    if name == "over_time":
        return analytics.over_time(conn, f, interval)
    if name == "districts":
        return analytics.by_district(conn, f, layer, geometry=geometry)
    if name == "hot_spots":
        rows = analytics.hot_spots(conn, f, cell)
        return rows if geometry else [{k: v for k, v in r.items() if k != "geometry"} for r in rows]
    if name == "top_categories":
        return analytics.top_categories(conn, f, args.get("top_layer") or "neighborhoods")
    if name == "crews":
        return analytics.crew_workload(conn, f)
    raise NotFound(f"no dataset {str(name)[:40]!r}")


def geojson(conn, name, args):
    if name not in MAPS:
        raise NotFound(f"no map {str(name)[:40]!r}")
    return analytics.feature_collection(dataset(conn, name, args, geometry=True))


def to_csv(rows):
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def _svg(fig):
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


def _num(v):
    return float(v) if isinstance(v, Decimal) else (v or 0)


def chart(conn, name, args):
    """An SVG chart of a dataset (matplotlib, rendered server-side)."""
    if name not in DATASETS:
        raise NotFound(f"no chart {str(name)[:40]!r}")
    rows = dataset(conn, name, args)
    # Imported on the first chart, not when the app loads: ~0.2 s of every web worker's start, which with a
    # socket per worker (`pin311 serve --reuse-port`) is time its share of new connections waits.
    # Figure alone (no pyplot) draws without a GUI backend.
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 3.2), dpi=96)
    ax = fig.add_subplot()
    if not rows:
        ax.text(0.5, 0.5, "No requests match these filters", ha="center", va="center")
        ax.set_axis_off()
        return _svg(fig)
    if name == "over_time":
        _over_time(ax, rows)
    elif name == "districts":
        labels = [r["code"] for r in rows]
        _stacked(ax.bar, labels, rows, "bottom")
        ax.set_ylabel("open requests")
        ax2 = ax.twinx()
        ax2.plot(labels, [_num(r["sla_pct"]) if r["sla_pct"] is not None else float("nan") for r in rows],
                 "o", color="#222", label="SLA met %")
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("SLA met %")
        ax.legend(loc="upper left", fontsize=7)
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    elif name == "hot_spots":
        top = rows[:15]
        ax.barh([_place(r) for r in top][::-1], [r["requests"] for r in top][::-1], color="#f58518")
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlabel("requests per cell")
    elif name == "top_categories":
        firsts = [r for r in rows if r["rank"] == 1]
        ax.barh([f"{r['district_name']}: {r['service_name']}"[:48] for r in firsts][::-1],
                [r["requests"] for r in firsts][::-1], color="#54a24b")
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlabel("requests of the top category")
    elif name == "crews":
        top = rows[:15][::-1]
        _stacked(ax.barh, [r["code"] for r in top], top, "left")
        ax.tick_params(axis="y", labelsize=6)
        ax.legend(fontsize=7)
    return _svg(fig)


# The open backlog in three parts that add up to it: an open request without an expected date is neither
# within its SLA nor overdue.
BACKLOG = (("open_within_sla", "open, within SLA", "#4c78a8"), ("open_no_sla", "open, no SLA date", "#bab0ac"),
           ("overdue", "open, overdue", "#e45756"))


def _stacked(bars, labels, rows, base):
    below = [0] * len(rows)
    for key, label, colour in BACKLOG:
        values = [r[key] for r in rows]
        bars(labels, values, label=label, color=colour, **{base: below})
        below = [b + v for b, v in zip(below, values)]


def _place(cell):
    """A hot-spot cell as people place it: its neighbourhood and centre."""
    where = f"{cell['neighbourhood']} " if cell.get("neighbourhood") else ""
    return f"{where}({cell['lat']:.4f}, {cell['lon']:.4f})"


def _over_time(ax, rows, top_n=6):
    """Lines for the top_n categories (by total) and one for all the others."""
    totals = {}
    for r in rows:  # rows are aggregates (period × category), a few thousand at most
        totals[r["service_code"]] = totals.get(r["service_code"], 0) + r["requests"]
    top = sorted(totals, key=totals.get, reverse=True)[:top_n]
    periods = sorted({r["period"] for r in rows})
    index = {p: i for i, p in enumerate(periods)}
    series = {code: [0] * len(periods) for code in top + ["other"]}
    names = {}
    for r in rows:
        key = r["service_code"] if r["service_code"] in top else "other"
        names[key] = r["service_name"] if key != "other" else "all other"
        series[key][index[r["period"]]] += r["requests"]
    for key, values in series.items():
        if key in names:   # a marker when there is a single period: a line needs two points
            ax.plot(periods, values, label=names[key][:30], linewidth=1, marker="o" if len(periods) == 1 else None)
    # the whole range asked for (over_time gives every period, zeros included) and counts from 0
    if len(periods) > 1:
        ax.set_xlim(periods[0], periods[-1])
    ax.set_ylim(bottom=0)
    ax.set_ylabel("requests")
    ax.legend(fontsize=6, ncol=2)
    ax.tick_params(axis="x", labelsize=7)


def check_name(name, allowed):
    if name not in allowed:
        raise InvalidInput(f"unknown dataset {str(name)[:40]!r}", field="name")
    return name


SHADES = ("#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704")
SLA_SHADES = ((95, "#1a9850"), (85, "#d9ef8b"), (75, "#fee08b"), (60, "#fc8d59"), (0, "#d73027"))


def folium_map(conn, name, args, static_base):
    """A stand-alone folium (Leaflet) HTML map of a map dataset, for download. Leaflet comes from
    `static_base` (this server's /static/vendor/leaflet), never a CDN: folium's CDN defaults are replaced."""
    import folium
    fc = geojson(conn, name, args)
    m = folium.Map(location=[42.32, -71.08], zoom_start=11, tiles=None)
    m.default_js = [("leaflet", f"{static_base}/vendor/leaflet/leaflet.js")]
    m.default_css = [("leaflet_css", f"{static_base}/vendor/leaflet/leaflet.css")]
    if name == "districts":
        def style(feature):
            pct = feature["properties"]["sla_pct"]
            colour = "#cccccc" if pct is None else next(c for low, c in SLA_SHADES if pct >= low)
            return {"fillColor": colour, "color": "#555", "weight": 1, "fillOpacity": 0.8}
        fields = ["code", "name", "open", "open_within_sla", "overdue", "open_no_sla", "sla_pct"]
    else:
        top = max((f["properties"]["requests"] for f in fc["features"]), default=1)

        def style(feature):
            n = feature["properties"]["requests"]
            return {"fillColor": SHADES[min(int(4 * n / top), 4)], "weight": 0, "fillOpacity": 0.8}
        fields = ["neighbourhood", "lat", "lon", "requests", "open"]
    if fc["features"]:
        layer = folium.GeoJson(fc, name=name, style_function=style, tooltip=folium.GeoJsonTooltip(fields))
        layer.add_to(m)
        m.fit_bounds(layer.get_bounds())
    return m.get_root().render()
