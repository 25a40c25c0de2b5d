"""Address parsing and normalisation with usaddress (US address CRF parser).

Both the gazetteer (at import) and the geocoder (at query time) pass through `parse`, so
"615 E Fourth St", "615 east 4th street" and "615 E. 4th St., South Boston MA 02127" all become
number 615 on street "E 4TH ST".
"""
import re
from dataclasses import dataclass

import usaddress

DIRECTIONS = {"NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW",
              "SOUTHEAST": "SE", "SOUTHWEST": "SW", "N": "N", "S": "S", "E": "E", "W": "W",
              "NE": "NE", "NW": "NW", "SE": "SE", "SW": "SW"}
# USPS Publication 28 street suffix abbreviations, the ones that occur in practice.
SUFFIXES = {
    "STREET": "ST", "STR": "ST", "ST": "ST", "AVENUE": "AVE", "AV": "AVE", "AVE": "AVE", "AVN": "AVE",
    "ROAD": "RD", "RD": "RD", "BOULEVARD": "BLVD", "BLVD": "BLVD", "DRIVE": "DR", "DR": "DR",
    "PLACE": "PL", "PL": "PL", "COURT": "CT", "CT": "CT", "LANE": "LN", "LN": "LN", "TERRACE": "TER",
    "TER": "TER", "TERR": "TER", "SQUARE": "SQ", "SQ": "SQ", "PARKWAY": "PKWY", "PKWY": "PKWY",
    "HIGHWAY": "HWY", "HWY": "HWY", "CIRCLE": "CIR", "CIR": "CIR", "WAY": "WAY", "WY": "WAY",
    "PARK": "PARK", "PK": "PARK", "ROW": "ROW", "WHARF": "WHF", "WHF": "WHF", "PLAZA": "PLZ", "PLZ": "PLZ",
    "HILL": "HL", "HL": "HL", "ALLEY": "ALY", "ALY": "ALY", "EXTENSION": "EXT", "EXT": "EXT",
    "CRESCENT": "CRES", "CRES": "CRES", "GARDENS": "GDNS", "GDNS": "GDNS", "GREEN": "GRN", "GRN": "GRN",
    "PATH": "PATH", "WALK": "WALK", "MALL": "MALL", "PIKE": "PIKE", "TURNPIKE": "TPKE", "TPKE": "TPKE",
    "BRIDGE": "BRG", "BRG": "BRG", "CAUSEWAY": "CSWY", "CSWY": "CSWY", "EXPRESSWAY": "EXPY", "EXPY": "EXPY",
}
ORDINALS = {"FIRST": "1ST", "SECOND": "2ND", "THIRD": "3RD", "FOURTH": "4TH", "FIFTH": "5TH", "SIXTH": "6TH",
            "SEVENTH": "7TH", "EIGHTH": "8TH", "NINTH": "9TH", "TENTH": "10TH", "ELEVENTH": "11TH",
            "TWELFTH": "12TH", "THIRTEENTH": "13TH", "FOURTEENTH": "14TH", "FIFTEENTH": "15TH"}
_ORDINAL_NUM = re.compile(r"^(\d+)(ST|ND|RD|TH)?$")
_NUMBER = re.compile(r"^(\d+)")
_INTERSECTION = re.compile(r"^\s*(?:INTERSECTION\s+OF\s+)?(.+?)\s+(?:&|AND|@|/|AT)\s+(.+)$", re.I)
_ZIP = re.compile(r"\b(\d{5})(?:-\d{4})?\b")


@dataclass(frozen=True)
class ParsedAddress:
    number: int | None
    number_text: str | None
    street: str            # normalised: "E 4TH ST"
    unit: str | None
    city: str | None
    zip: str | None


def _clean(text):
    return re.sub(r"\s+", " ", re.sub(r"[.,;#]", lambda m: " # " if m.group() == "#" else " ", text)).strip()


def normalize_street(words):
    """Normalise a street name given as text: directionals, ordinals and suffixes to USPS forms."""
    tokens = _clean(words).upper().split()
    out = []
    for i, token in enumerate(tokens):
        is_last = i == len(tokens) - 1
        is_first = i == 0
        if (is_first or is_last) and token in DIRECTIONS and len(tokens) > 1:
            out.append(DIRECTIONS[token])
        elif token in ORDINALS:
            out.append(ORDINALS[token])
        elif _ORDINAL_NUM.match(token) and not is_last:
            num, suffix = _ORDINAL_NUM.match(token).groups()
            out.append(num + (suffix or _ordinal_suffix(int(num))))
        elif is_last and token in SUFFIXES and len(tokens) > 1:
            out.append(SUFFIXES[token])
        else:
            out.append(token)
    return " ".join(out)


def _ordinal_suffix(n):
    if 10 <= n % 100 <= 20:
        return "TH"
    return {1: "ST", 2: "ND", 3: "RD"}.get(n % 10, "TH")


_GLUED = re.compile(r"^(\d+[A-Z]?(?:-\d+[A-Z]?)?)(?=[A-Z][a-z])")        # "10-12Johnson Ter"
_SPACED_RANGE = re.compile(r"^(\d+[A-Z]?)\s+(\d+[A-Z]?)\s+(?=[A-Za-z])")   # "14 16 Breed St"
_UNIT_SEGMENT = re.compile(r"^(?:(?:APT|APARTMENT|UNIT|STE|SUITE|FL|FLOOR|RM|ROOM|#)\s*#?\s*[\w-]+|"
                           r"(?=[\w -]*\d)[\w-]{1,6}(?:\s+[\w-]{1,6})?|[A-Z])$", re.I)
_STATE = re.compile(r"^(?:MA|MASS|MASSACHUSETTS)$", re.I)
_ZIP_SEGMENT = re.compile(r"^(?:(?:MA|MASS|MASSACHUSETTS)\s+)?(\d{5})(?:-\d{4})?$", re.I)


def _split_locality(text):
    """'49 S Huntington Ave, 1, Jamaica Plain, MA, 02130' → ('49 S Huntington Ave', unit, city, zip).

    Open311 and 311 records write the locality after commas; read those segments by their shape
    instead of letting the street parser glue "East Boston" onto the street name.
    """
    segments = [s.strip() for s in text.split(",") if s.strip()]
    if len(segments) < 2:
        return text, None, None, None
    street, unit, city, zip_code = segments[0], None, None, None
    for seg in segments[1:]:
        zip_match = _ZIP_SEGMENT.match(seg)
        if zip_match:
            zip_code = zip_match.group(1)
        elif _STATE.match(seg):
            continue
        elif _UNIT_SEGMENT.match(seg) and not city:
            unit = re.sub(r"^(?:APT|APARTMENT|UNIT|STE|SUITE|#)\s*#?\s*", "", seg, flags=re.I) or unit
        elif not city:
            city = " ".join(w for w in seg.split() if not _STATE.match(w) and not _ZIP.fullmatch(w)).title() \
                or None
            tail = _ZIP.search(seg)
            zip_code = zip_code or (tail.group(1) if tail else None)
    return street, unit, city, zip_code


def parse(text):
    """Parse a free-text address; the street is always normalised. Never raises on odd input."""
    text = (text or "").strip()
    text = _SPACED_RANGE.sub(r"\1-\2 ", _GLUED.sub(r"\1 ", text))
    text, seg_unit, seg_city, seg_zip = _split_locality(text)
    text = _clean(text)
    if not text:
        return ParsedAddress(None, None, "", None, None, None)
    try:
        tagged = usaddress.parse(text)
    except Exception:  # noqa: BLE001 - usaddress can fail on odd strings; fall back below
        tagged = []
    parts = {}
    for token, label in tagged:
        parts.setdefault(label, []).append(token)
    number_text = " ".join(parts.get("AddressNumber", [])) or None
    street_words = [*parts.get("StreetNamePreDirectional", []), *parts.get("StreetNamePreType", []),
                    *parts.get("StreetName", []), *parts.get("StreetNamePostType", []),
                    *parts.get("StreetNamePostDirectional", [])]
    if not street_words:  # e.g. "615 east 4th street" mis-tagged: take what follows the number
        words = text.split()
        street_words = words[1:] if words and _NUMBER.match(words[0]) else words
        number_text = number_text or (words[0] if words and _NUMBER.match(words[0]) else None)
    unit = " ".join(parts.get("OccupancyIdentifier", [])).replace("#", "").strip() or seg_unit
    city = " ".join(parts.get("PlaceName", [])).title() or seg_city
    zip_code = seg_zip
    if parts.get("ZipCode"):
        match = _ZIP.search(" ".join(parts["ZipCode"]))
        zip_code = match.group(1) if match else zip_code
    number = None
    if number_text:
        match = _NUMBER.match(number_text)
        number = int(match.group(1)) if match and len(match.group(1)) < 7 else None
    return ParsedAddress(number, number_text, normalize_street(" ".join(street_words)), unit, city, zip_code)


def split_intersection(text):
    """('BEACON ST', 'CHARLES ST') for "INTERSECTION of Beacon St & Charles St", else None."""
    match = _INTERSECTION.match(_clean(text or "").replace(" # ", " "))
    if not match or re.match(r"^\d", match.group(1).strip()):
        return None
    first = match.group(1)
    second = re.split(r"\s{2,}|,", match.group(2))[0]
    second = _ZIP.sub("", second).strip()
    # Drop a trailing locality ("Charles St Boston MA") by letting the parser find the street.
    second_street = parse("1 " + second).street or normalize_street(second)
    return normalize_street(first), second_street
