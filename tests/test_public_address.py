"""What the public sees of a request's place (migration 0013): never the caller's own words; no address at all
for a sensitive service; a sensitive point on a grid of 250 m on the ground."""
import math

from sqlalchemy import text

from tests.test_tiles import SOUTH_BOSTON, submit

WORDS = "outside Jane Roe's house, call 617-555-0166"


def _public(conn, public_id):
    row = conn.execute(text("SELECT address, ST_Y(geom) AS lat, ST_X(geom) AS lon FROM public_requests "
                            "WHERE public_id = :p"), {"p": public_id}).one()
    conn.rollback()
    return row


def test_words_given_beside_a_pin_stay_with_staff_and_the_public_gets_the_gazetteer_address(client, conn):
    ticket = submit(conn, address=WORDS)          # coordinates and a text, as a resident app sends them
    assert ticket["address_note"] == WORDS
    assert ticket["address"] == "615 E Fourth St, South Boston, MA 02127"     # the gazetteer's, at the pin
    assert _public(conn, ticket["public_id"]).address == ticket["address"]
    for url in (f"/requests/{ticket['public_id']}", f"/requests/{ticket['public_id']}.json",
                f"/open311/v2/requests/{ticket['public_id']}.json", "/open311/v2/requests.json?status=open"):
        body = client.get(url).get_data(as_text=True)
        assert "Jane Roe" not in body and "617-555-0166" not in body, url


def test_a_pin_far_from_any_address_publishes_no_address(conn):
    far = conn.execute(text("""
        SELECT ST_Y(p), ST_X(p) FROM (SELECT ST_Project(a.geom::geography, 200, radians(90))::geometry AS p
                                        FROM address_points a ORDER BY a.id LIMIT 400) x
         WHERE NOT EXISTS (SELECT 1 FROM address_points b WHERE ST_DWithin(b.geom::geography, x.p::geography, 40))
           AND EXISTS (SELECT 1 FROM districts d JOIN layers l ON l.id = d.layer_id
                        WHERE l.kind = 'boundary' AND ST_Covers(d.geom, x.p))
         LIMIT 1""")).one()
    conn.rollback()
    ticket = submit(conn, lat=far[0], lon=far[1], address="by the big oak tree")
    assert ticket["address"] is None and ticket["address_note"] == "by the big oak tree"
    assert _public(conn, ticket["public_id"]).address is None


def test_a_sensitive_request_publishes_no_address_not_even_its_street(conn):
    ticket = submit(conn, service="bed-bugs", attributes={})
    assert ticket["address"].startswith("615 E Fourth St")        # staff still see it
    assert _public(conn, ticket["public_id"]).address is None


def test_the_coarsening_grid_is_250_m_on_the_ground(conn):
    """The grid was 250 units of EPSG:3857, ~185 m at Boston's latitude: a point moved at most 131 m. Now a
    cell is 250 m on the ground, so points near a cell's corner move up to 177 m, and no point further."""
    points = {"lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1]}
    moved = conn.execute(text("""
        SELECT ST_Distance(g::geography, pin311_public_point(g, true)::geography)
          FROM (SELECT ST_SetSRID(ST_MakePoint(:lon + (i % 40) * 0.0004, :lat + (i / 40) * 0.0003), 4326) AS g
                  FROM generate_series(0, 799) i) pts"""), points).scalars().all()
    conn.rollback()
    half_diagonal = 125 * math.sqrt(2)
    assert max(moved) <= half_diagonal + 1
    assert max(moved) > 150
