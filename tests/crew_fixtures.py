"""What the crew tests share: the stray dog's place and ticket, crew accounts, test photos, the pages' CSRF token."""
import io
import re
from types import SimpleNamespace

from PIL import Image
from sqlalchemy import text

from gis.intake import NewRequest, submit_request


STRAY_DOG = (42.3345, -71.0398)      # scenario 5: 615 E Fourth St, police district C6


def _crew_id(conn, code):
    return conn.execute(text("SELECT id FROM crews WHERE code = :c"), {"c": code}).scalar_one()


def _user(conn, role="crew", crews=("animal-control-c6",), username="test-crew"):
    return SimpleNamespace(role=role, username=username, crew_ids=tuple(_crew_id(conn, c) for c in crews))


def _dog(conn, lat=STRAY_DOG[0], lon=STRAY_DOG[1], phone="+16175550142"):
    return submit_request(conn, NewRequest(
        service_code="animal-generic", lat=lat, lon=lon, attributes={"animal_type": "dog"},
        description="Stray dog by the park",
        contact={"first_name": "Ann", "last_name": "Caller", "phone": phone},
        channel="agent", actor="agent:test"))


def _status(conn, request_id):
    return conn.execute(text("SELECT status FROM service_requests WHERE id = :i"), {"i": request_id}).scalar()


def _jpeg(size=(64, 48), exif=None, colour=(200, 30, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", exif=exif or Image.Exif())
    return buf.getvalue()


def _exif_rotated_with_gps():
    exif = Image.Exif()
    exif[0x0112] = 6                  # orientation: rotate 90° CW to display
    exif[0x010F] = "PhoneMaker"       # camera make: must not survive
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (42.0, 20.0, 4.2), 3: "W", 4: (71.0, 2.0, 23.28)})
    return exif


def _csrf(client, path="/crew/"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
