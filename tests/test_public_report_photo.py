"""A resident's photo is stored only with a report that is filed: a refused report leaves no file behind."""
import io

import pytest
from sqlalchemy import text

from app.public import service
from gis.errors import OutsideJurisdiction
from tests.test_public import _csrf, _jpeg_with_gps
from tests.test_tiles import SOUTH_BOSTON

CAMBRIDGE = (42.3736, -71.1097)


def _report(client, lat, lon, **extra):
    return client.post("/report", data={
        "csrf_token": _csrf(client), "service_code": "animal-generic", "attribute[animal_type]": "dog",
        "lat": str(lat), "lon": str(lon), "photo": (io.BytesIO(_jpeg_with_gps()), "dog.jpg", "image/jpeg"),
        **extra}, content_type="multipart/form-data")


@pytest.fixture
def media_dir(app, tmp_path):
    app.config["MEDIA_DIR"] = str(tmp_path)
    return tmp_path


def _count(conn):
    conn.rollback()
    return conn.scalar(text("SELECT count(*) FROM service_requests"))


@pytest.mark.parametrize("lat, lon, says", [(*CAMBRIDGE, "outside the city"),
                                            (SOUTH_BOSTON[1], SOUTH_BOSTON[0], "swapped")])
def test_a_report_refused_for_its_place_stores_no_photo(client, conn, media_dir, lat, lon, says):
    before = _count(conn)
    refused = _report(client, lat, lon)
    assert refused.status_code in (400, 422) and says in refused.get_data(as_text=True)
    assert list(media_dir.iterdir()) == [] and _count(conn) == before


def test_a_report_refused_by_intake_after_the_photo_was_stored_removes_it(client, conn, media_dir, monkeypatch):
    def refuse(conn, new):      # e.g. the city's boundary replaced between the check and the insert
        assert list(media_dir.glob("*.jpg"))          # the photo was stored by then
        raise OutsideJurisdiction("the location is outside the city", field="lat")
    monkeypatch.setattr(service, "submit_request", refuse)
    before = _count(conn)
    assert _report(client, *SOUTH_BOSTON).status_code == 400
    assert list(media_dir.iterdir()) == [] and _count(conn) == before


def test_a_filed_report_keeps_its_photo_and_thumbnail(client, conn, media_dir):
    sent = _report(client, *SOUTH_BOSTON)
    assert sent.status_code == 303
    url = conn.scalar(text("SELECT media_url FROM service_requests ORDER BY id DESC LIMIT 1"))
    name = url.rsplit("/", 1)[1].removesuffix(".jpg")
    assert sorted(p.name for p in media_dir.iterdir()) == [f"{name}.jpg", f"{name}.thumb.jpg"]


def test_the_stored_photo_link_is_made_from_the_site_address_not_the_host_header(app, client, conn, media_dir):
    # the forged host gets no cookie from the test client, so no CSRF session either: CSRF is not the point here
    app.config.update(PUBLIC_URL="https://311.example.gov", WTF_CSRF_ENABLED=False)
    try:
        sent = client.post("/report", data={
            "service_code": "animal-generic", "attribute[animal_type]": "dog",
            "lat": str(SOUTH_BOSTON[0]), "lon": str(SOUTH_BOSTON[1]),
            "photo": (io.BytesIO(_jpeg_with_gps()), "dog.jpg", "image/jpeg")},
            content_type="multipart/form-data", headers={"Host": "attacker.example"})
    finally:
        app.config.update(PUBLIC_URL="", WTF_CSRF_ENABLED=True)
    assert sent.status_code == 303
    url = conn.scalar(text("SELECT media_url FROM service_requests ORDER BY id DESC LIMIT 1"))
    assert url.startswith("https://311.example.gov/photos/") and "attacker" not in url
