"""Crew photos: re-encoded upright without metadata, bad files refused, names kept inside the media folder,
nothing kept when the action is refused; the close-with-photo route, and no sensitive photo in public."""
import io
import uuid

import pytest
from PIL import Image
from sqlalchemy import text

from gis import crew, media
from gis.errors import InvalidInput
from tests.conftest import login
from tests.crew_fixtures import _csrf, _dog, _exif_rotated_with_gps, _jpeg, _status, _user


def test_photo_is_reencoded_upright_without_metadata(tmp_path):
    photo = media.save_photo(_jpeg((80, 40), _exif_rotated_with_gps()), tmp_path)
    full, thumb = media.paths(tmp_path, photo.name)
    with Image.open(full) as img:
        assert img.format == "JPEG" and img.size == (40, 80)          # turned upright
        assert not img.getexif() and "exif" not in img.info
    assert thumb.exists()
    assert photo.taken_at == {"lat": pytest.approx(42.3345, abs=1e-4),
                              "lon": pytest.approx(-71.0398, abs=1e-4)}
    assert b"PhoneMaker" not in full.read_bytes()


@pytest.mark.parametrize("data,problem", [(b"", "empty"), (b"GIF89a" + b"\0" * 100, "not a readable"),
                                          (b"%PDF-1.4 hello", "not a readable"),
                                          (b"\xff" * (media.MAX_BYTES + 1), "larger")])
def test_bad_photos_are_refused(tmp_path, data, problem):
    with pytest.raises(InvalidInput, match=problem):
        media.save_photo(data, tmp_path)
    assert not list(tmp_path.iterdir())


def test_photo_names_cannot_escape_the_media_dir(tmp_path):
    for name in ("../etc/passwd", "a" * 32 + "/..", "", None, "ABCDEF" * 6):
        with pytest.raises(InvalidInput):
            media.paths(tmp_path, name)


def test_refused_action_keeps_no_photo(conn, tmp_path):
    ticket = _dog(conn)
    user = _user(conn)
    with pytest.raises(InvalidInput):
        crew.act(conn, user, ticket["public_id"], "close", key=str(uuid.uuid4()), reason="bogus",
                 photo=_jpeg(), media_dir=tmp_path)
    assert not list(tmp_path.glob("*.jpg"))


def test_close_with_photo_over_http_and_photo_route(client, staff, conn, app, tmp_path):
    app.config["MEDIA_DIR"] = str(tmp_path)
    ticket = _dog(conn)
    login(client, staff["crew"])
    token = _csrf(client)
    headers = {"X-CSRFToken": token, "Accept": "application/json"}
    url = f"/crew/tickets/{ticket['public_id']}/actions"
    no_csrf = client.post(url, data={"action": "close", "key": "x"}, headers={"Accept": "application/json"})
    assert no_csrf.status_code == 400
    r = client.post(url, headers=headers, content_type="multipart/form-data",
                    data={"action": "close", "reason": "fixed", "note": "Done",
                          "key": "key-1-" + ticket["public_id"],
                          "lat": "42.3344", "lon": "-71.0399", "photo": (io.BytesIO(_jpeg()), "dog.jpg")})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["status"] == "closed" and r.get_json()["repeated"] is False
    name = conn.execute(text("SELECT media FROM request_events WHERE request_id = :i AND kind = 'closed'"),
                        {"i": ticket["id"]}).scalar()
    got = client.get(f"/crew/photos/{name}.thumb.jpg")
    assert got.status_code == 200 and got.mimetype == "image/jpeg"
    assert client.get("/crew/photos/" + "0" * 32 + ".jpg").status_code == 404
    assert media.public_photo_allowed(conn, name) is True
    noted = crew.act(conn, _user(conn), ticket["public_id"], "note", key=uuid.uuid4().hex,
                     internal_note="inside",
                     photo=_jpeg(), media_dir=tmp_path)
    assert noted["status"] == "closed"
    inner = conn.execute(text("SELECT media FROM request_events WHERE request_id = :i AND kind = 'note'"),
                         {"i": ticket["id"]}).scalar()
    assert media.public_photo_allowed(conn, inner) is False      # an internal note's photo stays internal
    assert client.get(f"/crew/photos/{inner}.jpg").status_code == 200
    conn.execute(text("UPDATE services SET sensitive = true WHERE code = 'animal-generic'"))
    assert media.public_photo_allowed(conn, name) is False
    conn.rollback()
    client.post("/logout", data={"csrf_token": token})
    assert client.get(f"/crew/photos/{name}.jpg").status_code in (302, 401)


def test_bad_upload_is_a_clear_error(client, staff, conn, app, tmp_path):
    app.config["MEDIA_DIR"] = str(tmp_path)
    ticket = _dog(conn)
    login(client, staff["crew"])
    r = client.post(f"/crew/tickets/{ticket['public_id']}/actions",
                    headers={"X-CSRFToken": _csrf(client), "Accept": "application/json"},
                    content_type="multipart/form-data",
                    data={"action": "close", "reason": "fixed", "key": uuid.uuid4().hex,
                          "photo": (io.BytesIO(b"<svg onload=alert(1)>"), "x.svg")})
    assert r.status_code == 400 and r.get_json()["field"] == "photo"
    assert _status(conn, ticket["id"]) == "open"


def test_public_never_gets_a_sensitive_closure_photo(client, conn, app, tmp_path):
    if not any(r.rule == "/photos/<name>.jpg" for r in app.url_map.iter_rules()):
        pytest.skip("the public site's photo route is not in this app")
    saved = app.config["MEDIA_DIR"]
    app.config["MEDIA_DIR"] = str(tmp_path)
    ticket = _dog(conn)
    crew.act(conn, _user(conn), ticket["public_id"], "close", key=uuid.uuid4().hex, reason="fixed",
             photo=_jpeg(), media_dir=tmp_path)
    name = conn.execute(text("SELECT media FROM request_events WHERE request_id = :i AND kind = 'closed'"),
                        {"i": ticket["id"]}).scalar()
    original = conn.execute(text("SELECT sensitive FROM services WHERE code = 'animal-generic'")).scalar()
    conn.rollback()
    try:
        assert client.get(f"/photos/{name}.jpg").status_code == 200          # a stray dog is not sensitive
        conn.execute(text("UPDATE services SET sensitive = true WHERE code = 'animal-generic'"))
        conn.commit()
        assert client.get(f"/photos/{name}.jpg").status_code == 404
        assert client.get(f"/crew/photos/{name}.jpg").status_code in (302, 401)   # staff only, signed in
    finally:
        conn.rollback()
        conn.execute(text("UPDATE services SET sensitive = :s WHERE code = 'animal-generic'"),
                     {"s": original})
        conn.commit()
        app.config["MEDIA_DIR"] = saved
