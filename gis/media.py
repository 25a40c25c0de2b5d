"""Photos attached to requests: checked, re-encoded, thumbnailed, stored under MEDIA_DIR.

An upload is never stored as sent: Pillow decodes it (JPEG, PNG or WebP only, bounded size and
pixel count), turns it upright by its EXIF orientation, and writes a fresh JPEG without any metadata
(no camera serial, no GPS), plus a thumbnail. Names are random, so a photo's URL reveals nothing and
cannot be guessed. The EXIF GPS position, when present, is returned to the caller so staff can see
where the photo was taken; it is stored with the event's internal data and never published.
Photos of sensitive services are never served to the public (`public_photo_allowed`).
"""
import os
import re
import secrets
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import text

from gis.errors import InvalidInput

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000           # decompression-bomb guard (a 40 MP phone photo is the most we take)
FORMATS = {"JPEG", "PNG", "WEBP", "MPO"}   # MPO: the JPEG variant some phones write
FULL_SIZE = 2048
THUMB_SIZE = 320
NAME = re.compile(r"^[0-9a-f]{32}$")
GPS_IFD = 0x8825


@dataclass
class Photo:
    name: str
    width: int
    height: int
    bytes: int
    taken_at: dict | None      # {"lat", "lon"} from EXIF GPS, internal only

    def as_dict(self):
        return {"name": self.name, "width": self.width, "height": self.height, "bytes": self.bytes,
                "taken_at": self.taken_at}


def paths(media_dir, name):
    """(full, thumbnail) paths of a stored photo; InvalidInput for a name we did not make."""
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput("no such photo", field="photo")
    base = Path(media_dir)
    return base / f"{name}.jpg", base / f"{name}.thumb.jpg"


def save_photo(data, media_dir):
    """Check and store an uploaded photo (bytes); returns a Photo. Raises InvalidInput when refused."""
    if not data:
        raise InvalidInput("the photo is empty", field="photo")
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the photo is larger than {MAX_BYTES // (1024 * 1024)} MB", field="photo")
    image = _decode(data)
    taken_at = _gps(image)
    upright = ImageOps.exif_transpose(image)
    upright = upright.convert("RGB") if upright.mode != "RGB" else upright
    upright.thumbnail((FULL_SIZE, FULL_SIZE), Image.Resampling.LANCZOS)
    name = secrets.token_hex(16)
    full, thumb = paths(media_dir, name)
    full.parent.mkdir(parents=True, exist_ok=True)
    _write_jpeg(upright, full, quality=85)
    small = upright.copy()
    small.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    _write_jpeg(small, thumb, quality=80)
    return Photo(name, upright.width, upright.height, full.stat().st_size, taken_at)


def _decode(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(BytesIO(data))
            if image.format not in FORMATS:
                raise InvalidInput("the photo must be a JPEG, PNG or WebP image", field="photo")
            if image.width * image.height > MAX_PIXELS:
                raise InvalidInput("the photo has too many pixels", field="photo")
            image.load()
        except InvalidInput:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
                OSError, ValueError, SyntaxError):
            raise InvalidInput("the file is not a readable JPEG, PNG or WebP image", field="photo") from None
    return image


def _write_jpeg(image, path, quality):
    # Written to a temporary name first so a reader never sees half a file.
    tmp = path.with_suffix(".part")
    image.save(tmp, "JPEG", quality=quality, optimize=True)   # no exif= argument: no metadata kept
    os.replace(tmp, path)


def _gps(image):
    """(lat, lon) from EXIF GPS as a dict, or None when absent or malformed."""
    try:
        gps = image.getexif().get_ifd(GPS_IFD)
        if not gps or 2 not in gps or 4 not in gps:
            return None
        lat = _degrees(gps[2]) * (-1 if str(gps.get(1, "N")).upper().startswith("S") else 1)
        lon = _degrees(gps[4]) * (-1 if str(gps.get(3, "E")).upper().startswith("W") else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return {"lat": round(lat, 6), "lon": round(lon, 6)}


def _degrees(dms):
    d, m, s = (float(x) for x in dms)
    return d + m / 60 + s / 3600


def delete_photo(media_dir, name):
    for path in paths(media_dir, name):
        path.unlink(missing_ok=True)


# Only a closure photo is public (what the caller sees with "closed"); photos with a start or an
# internal note stay with staff. Sensitive or non-public services: never.
_PHOTO_OWNER = text("""
SELECT s.sensitive, s.public FROM request_events e
  JOIN service_requests r ON r.id = e.request_id JOIN services s ON s.code = r.service_code
 WHERE e.media = :name AND e.kind = 'closed' LIMIT 1""")


def public_photo_allowed(conn, name):
    """True only for the closure photo of a request of a public, non-sensitive service."""
    if not isinstance(name, str) or not NAME.match(name):
        return False
    row = conn.execute(_PHOTO_OWNER, {"name": name}).first()
    return bool(row and row.public and not row.sensitive)


def staff_photo_exists(conn, name):
    """The photo belongs to some request event (files not attached to one are never served)."""
    if not isinstance(name, str) or not NAME.match(name):
        return False
    found = conn.execute(text("SELECT 1 FROM request_events WHERE media = :name LIMIT 1"), {"name": name})
    return found.first() is not None
