"""A new password ends the account's other sign-ins: changing one's own keeps the browser that did it
signed in (with a fresh session) while every other session of the account, copied cookies included, ends;
an administrator setting someone else's password ends all of that person's sessions."""
import re

from sqlalchemy import text

from tests.conftest import STAFF_PASSWORD, login
from tests.test_sessions import _copy, _in, _sessions, _signed_in, _user_id, account  # noqa: F401

NEW = "a-brand-new-password"


def _csrf(client, page="/account/password"):
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(page).get_data(as_text=True)).group(1)


def _change(client, current=STAFF_PASSWORD, new=NEW, repeat=None):
    return client.post("/account/password", data={"csrf_token": _csrf(client), "current_password": current,
                                                  "new_password": new, "repeat": new if repeat is None else repeat})


def test_changing_ones_own_password_keeps_this_browser_signed_in_and_ends_the_others(
        app, engine, account):  # noqa: F811
    desk, phone = _signed_in(app, account, agent="desk"), _signed_in(app, account, agent="phone")
    desk_copy, phone_copy = _copy(app, desk), _copy(app, phone)
    answer = _change(desk)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/agent/")
    page = desk.get("/agent/")
    assert page.status_code == 200 and "You stay signed in here" in page.get_data(as_text=True)
    assert _in(desk) and desk.get("/api/v1/services").status_code == 200
    # the other sign-ins end, and so does a copy of this browser's cookie as it was before the change
    assert not any(_in(c) for c in (phone, phone_copy, desk_copy))
    rows = _sessions(engine, account)
    assert [r.revoked_reason for r in rows] == ["password changed", "password changed", None]
    assert rows[-1].user_agent == "desk"
    assert login(app.test_client(), account).status_code == 401          # the old password is gone
    assert login(app.test_client(), account, NEW).status_code == 302


def test_a_refused_change_changes_nothing_and_says_why(app, engine, account):  # noqa: F811
    desk, phone = _signed_in(app, account), _signed_in(app, account)
    for current, new, repeat, why in (
            ("not-my-password", NEW, NEW, "Current password: your current password is not right"),
            (STAFF_PASSWORD, "short", "short", "New password: must have at least 10 characters"),
            (STAFF_PASSWORD, NEW, NEW + "x", "New password again: does not match the new password"),
            (STAFF_PASSWORD, STAFF_PASSWORD, STAFF_PASSWORD,
             "New password: the new password must differ from the current one")):
        answer = _change(desk, current, new, repeat)
        assert answer.status_code == 400 and why in answer.get_data(as_text=True), why
    assert _in(desk) and _in(phone)
    assert [r.revoked_at for r in _sessions(engine, account)] == [None, None]
    assert login(app.test_client(), account).status_code == 302


def test_an_administrator_setting_someone_elses_password_ends_all_their_sessions(
        app, engine, staff, account):  # noqa: F811
    desk, phone = _signed_in(app, account), _signed_in(app, account)
    admin = _signed_in(app, staff["admin"])
    user_id = _user_id(engine, account)
    page = f"/admin/users/{user_id}"
    assert 'id="reset-password"' in admin.get(page).get_data(as_text=True)
    refused = admin.post(f"{page}/password", data={"csrf_token": _csrf(admin, page), "new_password": "short"})
    assert refused.status_code == 302 and _in(desk)
    assert "Not changed: the password must have at least 10 characters." in admin.get(page).get_data(as_text=True)
    answer = admin.post(f"{page}/password", data={"csrf_token": _csrf(admin, page), "new_password": NEW})
    assert answer.status_code == 302 and "signed out everywhere" in admin.get(page).get_data(as_text=True)
    assert not _in(desk) and not _in(phone) and _in(admin, "/admin/users/")
    assert {r.revoked_reason for r in _sessions(engine, account)} == {"password changed"}
    assert login(app.test_client(), account, NEW).status_code == 302


def test_an_administrator_changes_their_own_password_as_everyone_does(app, engine, staff):
    admin = _signed_in(app, staff["admin"])
    user_id = _user_id(engine, staff["admin"])
    page = f"/admin/users/{user_id}"
    assert 'id="reset-password"' not in admin.get(page).get_data(as_text=True)
    answer = admin.post(f"{page}/password", data={"csrf_token": _csrf(admin, page), "new_password": NEW})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/account/password")
    with engine.connect() as c:     # unchanged: the shared admin account still signs in as before
        assert c.scalar(text("SELECT count(*) FROM staff_sessions WHERE user_id = :u AND revoked_at IS NULL "
                             "AND revoked_reason IS NULL"), {"u": user_id}) >= 1
    assert login(app.test_client(), staff["admin"]).status_code == 302 and _in(admin, "/admin/users/")


def test_guessing_the_current_password_counts_as_failed_sign_ins(app, engine, account):  # noqa: F811
    """Five wrong current passwords from one address refuse the sixth try there, right or not, as sign-in
    does; the sign-in page from that address is refused too (the same counts)."""
    desk = _signed_in(app, account)
    for attempt in range(5):
        answer = _change(desk, current=f"guess-number-{attempt}")
        assert answer.status_code == 400 and "your current password is not right" in answer.get_data(as_text=True)
    answer = _change(desk)                     # the right one, now refused unchecked
    assert answer.status_code == 400 and "too many failures from this address" in answer.get_data(as_text=True)
    assert login(app.test_client(), account).status_code == 401
    assert [r.revoked_at for r in _sessions(engine, account)] == [None]
