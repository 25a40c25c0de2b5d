"""Signing in to the portal from the environment; a refused credential is a clear error, not anonymity."""
import pytest
from click.testing import CliRunner

from gis import arcgis_connect
from gis.arcgis_connect import ArcGISAuthError, ArcGISConfigError, PortalUnavailable
from tests.arcgis_fixtures import arcgis_env, portal  # noqa: F401
from tests.standin_portal import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER


def _use(env, **values):
    for name in ("API_KEY", "CLIENT_ID", "CLIENT_SECRET", "USERNAME", "PASSWORD"):
        env.delenv("PIN311_ARCGIS_" + name, raising=False)
    for name, value in values.items():
        env.setenv("PIN311_ARCGIS_" + name.upper(), value)


def test_api_key_signs_in(arcgis_env):
    assert arcgis_connect.connect().users.me.username == USER


def test_a_bad_api_key_is_refused_not_anonymous(portal, arcgis_env):
    _use(arcgis_env, api_key="AAPK-wrong")
    with pytest.raises(ArcGISAuthError, match="refused PIN311_ARCGIS_API_KEY.*anonymous"):
        arcgis_connect.connect()


def test_enterprise_user_signs_in_with_generate_token(portal, arcgis_env):
    _use(arcgis_env, username=USER, password=PASSWORD)
    assert arcgis_connect.connect().users.me.username == USER
    assert ("POST", "/portal/sharing/rest/generateToken") in portal.calls


def test_a_bad_password_is_refused(arcgis_env):
    _use(arcgis_env, username=USER, password="wrong")
    with pytest.raises(ArcGISAuthError, match="refused PIN311_ARCGIS_USERNAME/PIN311_ARCGIS_PASSWORD"):
        arcgis_connect.connect()


def test_client_credentials_sign_in_and_a_bad_secret_is_refused(portal, arcgis_env):
    _use(arcgis_env, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert arcgis_connect.connect().users.me.username == USER
    assert ("POST", "/portal/sharing/rest/oauth2/token") in portal.calls
    _use(arcgis_env, client_id=CLIENT_ID, client_secret="nope")
    with pytest.raises(ArcGISAuthError, match="CLIENT_SECRET: Invalid client_id"):
        arcgis_connect.connect()


def test_missing_settings_say_what_is_missing(arcgis_env):
    _use(arcgis_env, username=USER)
    with pytest.raises(ArcGISConfigError, match="PIN311_ARCGIS_PASSWORD is not set"):
        arcgis_connect.connect()
    _use(arcgis_env)
    with pytest.raises(ArcGISConfigError, match="no ArcGIS credential"):
        arcgis_connect.connect()
    arcgis_env.delenv("PIN311_ARCGIS_URL")
    with pytest.raises(ArcGISConfigError, match="PIN311_ARCGIS_URL is not set"):
        arcgis_connect.connect()


def test_a_portal_that_is_down_is_unavailable_not_a_bad_credential(portal, arcgis_env):
    portal.down = "drop"
    with pytest.raises(PortalUnavailable, match="cannot"):
        arcgis_connect.connect()
    portal.down = None


def test_cli_says_the_credential_was_refused_in_one_line(engine, arcgis_env):
    from app.cli import main
    _use(arcgis_env, api_key="AAPK-wrong")
    out = CliRunner().invoke(main, ["arcgis", "publish"])
    assert out.exit_code == 1
    assert "error: the portal refused PIN311_ARCGIS_API_KEY" in out.output
    assert "Traceback" not in out.output


def test_a_half_configured_portal_holds_changes_until_fixed(engine, portal, arcgis_env):
    """URL set, credential missing: the sync keeps the rows (with the reason) instead of dropping them."""
    from sqlalchemy import text

    from gis import arcgis_sync
    with engine.begin() as c:
        c.execute(text("UPDATE outbox SET done_at = now() WHERE topic = 'publish' AND done_at IS NULL"))
        c.execute(text("INSERT INTO arcgis_items (portal_url, key, item_id, url, title) "
                       "VALUES (:p, 'requests', 'x', :p, 't')"), {"p": portal.url})
        rid = c.execute(text("SELECT min(id) FROM service_requests")).scalar()
        c.execute(text("INSERT INTO outbox (topic, payload) VALUES ('publish', jsonb_build_object('request_id', :r))"),
                  {"r": rid})
    try:
        _use(arcgis_env)
        result = arcgis_sync.run_once(engine)
        assert result["sent"] == 0 and "no ArcGIS credential" in result["error"]
        with engine.connect() as c:
            assert arcgis_sync.status(c)["backlog"] == 1
    finally:
        with engine.begin() as c:
            c.execute(text("DELETE FROM arcgis_items"))
