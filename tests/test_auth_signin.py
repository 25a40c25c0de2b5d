"""Sign-in hardening: where it sends you afterwards, whose address counts behind a proxy, what a failure
gives away, and when a session stops being valid."""
import re
from urllib.parse import quote, urlsplit

import pytest

from tests.conftest import STAFF_PASSWORD


def _csrf(client):
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _sign_in(client, username, password=STAFF_PASSWORD, query="", **headers):
    return client.post("/login" + query, data={"username": username, "password": password,
                                               "csrf_token": _csrf(client)}, headers=headers)


LEAVING = ["//evil.example/phish", "///evil.example", "/\\evil.example", "/\\\\evil.example", "\\\\evil.example",
           "/\t/evil.example/phish", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example", " //evil.example",
           "\x00//evil.example", "/\x7f/evil.example", "https://evil.example", "http:/evil.example",
           "//evil.example@localhost", "javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x",
           "evil.example", "", "/%2F%2Fevil.example"]


@pytest.mark.parametrize("target", LEAVING)
def test_sign_in_never_redirects_off_site(app, staff, target):
    # The query string carries the value percent-encoded, as a browser sends it ("/%09/…" for a tab).
    r = _sign_in(app.test_client(), staff["agent"], query="?next=" + quote(target, safe=""))
    assert r.status_code == 302
    location = r.headers["Location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, (target, location)
    assert location.startswith("/") and not location.startswith(("//", "/\\")), (target, location)


def test_sign_in_tab_trick_from_the_qa_report(app, staff):
    r = _sign_in(app.test_client(), staff["agent"], query="?next=/%09/evil.example/phish")
    assert r.headers["Location"] == "/agent/"


@pytest.mark.parametrize("target", ["/agent/", "/crew/tickets/1000123?tab=notes", "/dashboards/?period=today#map",
                                    "/%2F%2Fstill-a-path"])
def test_sign_in_returns_to_a_path_on_this_site(app, staff, target):
    r = _sign_in(app.test_client(), staff["admin"], query="?next=" + quote(target, safe=""))
    assert r.headers["Location"] == target
