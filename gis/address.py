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


def parse(text):
    """Parse a free-text address; the street is always normalised. Never raises on odd input."""
    text = _clean(text or "")
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
    unit = " ".join(parts.get("OccupancyIdentifier", [])).replace("#", "").strip() or None
    city = " ".join(parts.get("PlaceName", [])).title() or None
    zip_code = None
    if parts.get("ZipCode"):
        match = _ZIP.search(" ".join(parts["ZipCode"]))
        zip_code = match.group(1) if match else None
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
