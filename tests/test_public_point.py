"""The public point is generated from the point and the service's sensitivity (migration 0018): no writer
can set it or get the flag wrong, and intake computes it without calling plpgsql."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from gis import intake
from tests.test_tiles import SOUTH_BOSTON, submit

SENSITIVE = "bed-bugs"


def _point(conn, public_id):
    return conn.execute(text("SELECT ST_AsText(public_geom), ST_AsText(geom), sensitive FROM service_requests "
                             "WHERE public_id = :p"), {"p": public_id}).one()


def test_no_writer_can_set_the_public_point(conn):
    ticket = submit(conn)
    with pytest.raises(ProgrammingError, match="generated column"):
        conn.execute(text("UPDATE service_requests SET public_geom = geom WHERE public_id = :p"),
                     {"p": ticket["public_id"]})
    conn.rollback()


def test_a_request_cannot_carry_another_sensitivity_than_its_services(conn):
    ticket = submit(conn)
    with pytest.raises(IntegrityError, match="service_requests_service_sensitivity"):
        conn.execute(text("UPDATE service_requests SET sensitive = NOT sensitive WHERE public_id = :p"),
                     {"p": ticket["public_id"]})
    conn.rollback()
    with pytest.raises(IntegrityError, match="service_requests_service_sensitivity"):
        conn.execute(text("""INSERT INTO service_requests (service_code, sensitive, geom, channel)
                             VALUES (:s, false, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'api')"""),
                     {"s": SENSITIVE, "lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1]})
    conn.rollback()


def test_moving_a_request_to_a_sensitive_service_coarsens_its_public_point(conn):
    ticket = submit(conn)
    public, exact, sensitive = _point(conn, ticket["public_id"])
    assert public == exact and sensitive is False
    conn.execute(text("UPDATE service_requests SET service_code = :s WHERE public_id = :p"),
                 {"s": SENSITIVE, "p": ticket["public_id"]})
    public, exact, sensitive = _point(conn, ticket["public_id"])
    assert sensitive is True and public != exact
    assert public == conn.scalar(text("SELECT ST_AsText(pin311_public_point(ST_GeomFromText(:g, 4326), true))"),
                                 {"g": exact})
    conn.rollback()


def _trigger_calls(conn, name="%"):
    """plpgsql calls so far in this transaction (the data-version trigger is deferred: it fires at commit)."""
    return conn.scalar(text("SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
                            "WHERE funcname LIKE :n"), {"n": name})


def test_intake_gives_the_flag_itself_and_calls_no_trigger_function_a_writer_that_does_not_gets_it_filled(conn):
    params = dict.fromkeys(intake._INSERT_STMT.params)          # the intake statement as submit_request runs it
    params.update(lat=SOUTH_BOSTON[0], lon=SOUTH_BOSTON[1], service="animal-generic", attributes="{}",
                  channel="api", actor="test", has_sla=True, has_contact=False, notify=False)
    conn.execute(text("SET track_functions = 'pl'"))
    row = conn.exec_driver_sql(intake._INSERT_STMT.plain_sql, params).one()
    assert row.id is not None and _trigger_calls(conn) == 0
    conn.execute(text("""INSERT INTO service_requests (service_code, geom, channel)
                         VALUES (:s, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'api')"""),
                 {"s": SENSITIVE, "lat": SOUTH_BOSTON[0], "lon": SOUTH_BOSTON[1]})
    assert _trigger_calls(conn, "pin311_request_sensitivity") == 1
    filled = conn.execute(text("SELECT sensitive, NOT ST_Equals(public_geom, geom) FROM service_requests "
                               "ORDER BY id DESC LIMIT 1")).one()
    assert filled == (True, True)
    conn.rollback()
