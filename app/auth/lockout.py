"""Failed sign-ins, counted by name and client address so that guessing from one address cannot lock a
colleague out everywhere (five wrong passwords used to lock the account for everyone for 15 minutes).

Five failures for a name from one address refuse that name from that address for the rest of a 15-minute
window; fifty from all addresses together refuse it everywhere, a ceiling one address cannot reach
alone, against guessing spread over many. Unknown names are counted like real ones, so the answers never
tell them apart. The counts live where the rate limits do (gis.ratelimit: PostgreSQL, shared by every
worker; a crash empties them, which only forgives some failures).
"""
import ipaddress

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

PER_ADDRESS = parse("5 per 15 minutes")
PER_NAME = parse("50 per 15 minutes")


def _network(address):
    """The client as counted: an IPv4 address, or an IPv6 client's /64 (one host usually holds all of it)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


class SignInFailures:
    def __init__(self, database_url):
        self._counts = FixedWindowRateLimiter(storage_from_string("pin311://", database_url=database_url))

    def refusing(self, username, address):
        """Why sign-in as `username` from `address` is refused whatever the password, or None."""
        if not self._counts.test(PER_ADDRESS, "sign-in", _network(address), username):
            return "too many failures from this address"
        if not self._counts.test(PER_NAME, "sign-in", username):
            return "too many failures from all addresses"
        return None

    def failed(self, username, address):
        self._counts.hit(PER_ADDRESS, "sign-in", _network(address), username)
        self._counts.hit(PER_NAME, "sign-in", username)

    def succeeded(self, username, address):
        """A success forgives this address's earlier mistakes (not the failures from elsewhere)."""
        self._counts.clear(PER_ADDRESS, "sign-in", _network(address), username)
