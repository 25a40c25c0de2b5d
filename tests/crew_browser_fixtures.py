"""What the crew browser tests share: the phone-sized Chromium, a media folder, a photo to attach, the ticket
page open as the crew, the queue's state, another person signing in on the same browser."""
import io
import re

import pytest
from PIL import Image
from sqlalchemy import text

from tests.conftest import STAFF_PASSWORD
from tests.crew_fixtures import STRAY_DOG, _exif_rotated_with_gps


PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser):
    context = browser.new_context(bypass_csp=True, viewport=PHONE, is_mobile=True, has_touch=True,
                                  device_scale_factor=2,
                                  geolocation={"latitude": STRAY_DOG[0], "longitude": STRAY_DOG[1]},
                                  permissions=["geolocation"])
    errors = []
    context.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(str(exc))))
    yield context
    context.set_offline(False)     # a test that took the phone offline leaves it as it found it
    context.close()
    assert not errors, errors      # no script error on any page, online or offline


@pytest.fixture
def media_dir(app, tmp_path):
    saved = app.config["MEDIA_DIR"]
    app.config["MEDIA_DIR"] = str(tmp_path)
    yield tmp_path
    app.config["MEDIA_DIR"] = saved


def _photo_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (120, 90), (90, 140, 60)).save(buf, "JPEG", exif=_exif_rotated_with_gps())
    return buf.getvalue()


def _photo_file():
    return {"name": "dog.jpg", "mimeType": "image/jpeg", "buffer": _photo_bytes()}


def _status(conn, request_id):
    conn.rollback()
    return conn.execute(text("SELECT status FROM service_requests WHERE id = :i"), {"i": request_id}).scalar()


def _actors(conn, request_id):
    conn.rollback()
    return conn.execute(text("SELECT kind, actor FROM request_events WHERE request_id = :i AND kind <> 'created' "
                             "ORDER BY id"), {"i": request_id}).all()


def _sign_in_elsewhere(context, live_server, username):
    """Someone else signs in on this browser (its cookie jar), without opening a page: through the
    context's own HTTP client, which shares the pages' cookies."""
    form = context.request.get(f"{live_server}/login").text()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', form)
    answer = context.request.post(f"{live_server}/login", max_redirects=0, form={
        "username": username, "password": STAFF_PASSWORD, "csrf_token": token.group(1) or token.group(2)})
    assert answer.status == 302, answer.text()[:300]
