"""Signing in to ArcGIS Online / Enterprise with the `arcgis` package, from the environment.

PIN311_ARCGIS_URL (the portal, e.g. https://www.arcgis.com or https://gis.city.gov/portal) and one of:
  PIN311_ARCGIS_API_KEY;
  PIN311_ARCGIS_CLIENT_ID + PIN311_ARCGIS_CLIENT_SECRET (OAuth client credentials → an app token);
  PIN311_ARCGIS_USERNAME + PIN311_ARCGIS_PASSWORD (Enterprise built-in users, generateToken).
PIN311_ARCGIS_VERIFY_CERT: "false" to accept a self-signed certificate, or a CA bundle path.

A credential the portal refuses is an ArcGISAuthError (the package would quietly carry on anonymous
with a bad API key); a portal that cannot be reached is a PortalUnavailable, which callers retry.
"""
import logging
import os

import requests

from gis.errors import Pin311Error

PREFIX = "PIN311_ARCGIS_"


class ArcGISConfigError(Pin311Error):
    code = "arcgis_config"


class ArcGISAuthError(Pin311Error):
    code = "arcgis_auth"
    status = 502


class PortalUnavailable(Pin311Error):
    code = "arcgis_unavailable"
    status = 503


def _env(name, env):
    return (env.get(PREFIX + name) or "").strip()


def settings(env=None):
    """The ArcGIS settings from the environment, or ArcGISConfigError saying what is missing."""
    env = os.environ if env is None else env
    url = _env("URL", env).rstrip("/")
    if not url:
        raise ArcGISConfigError(f"{PREFIX}URL is not set (the ArcGIS Online or Enterprise portal URL)")
    verify = _env("VERIFY_CERT", env) or "true"
    verify = {"false": False, "0": False, "no": False, "true": True, "1": True}.get(verify.lower(), verify)
    s = {"url": url, "verify": verify}
    for kind, names in (("api_key", ("API_KEY",)), ("client", ("CLIENT_ID", "CLIENT_SECRET")),
                        ("user", ("USERNAME", "PASSWORD"))):
        values = [_env(n, env) for n in names]
        if all(values):
            return {**s, "kind": kind, "secrets": values}
        if any(values):
            missing = [PREFIX + n for n, v in zip(names, values) if not v]
            raise ArcGISConfigError(f"{', '.join(missing)} is not set")
    raise ArcGISConfigError(f"no ArcGIS credential: set {PREFIX}API_KEY, or {PREFIX}CLIENT_ID and "
                            f"{PREFIX}CLIENT_SECRET, or {PREFIX}USERNAME and {PREFIX}PASSWORD")


def rest_url(url):
    return url if url.endswith("/sharing/rest") else url + "/sharing/rest"


def _app_token(s):
    """OAuth 2 client credentials: POST sharing/rest/oauth2/token → an app token (a bearer, like a key)."""
    client_id, secret = s["secrets"]
    try:
        resp = requests.post(rest_url(s["url"]) + "/oauth2/token", timeout=30, verify=s["verify"],
                             data={"f": "json", "grant_type": "client_credentials", "client_id": client_id,
                                   "client_secret": secret})
        body = resp.json()
    except requests.RequestException as exc:
        raise PortalUnavailable(f"cannot reach {s['url']}: {exc}") from None
    except ValueError:
        raise PortalUnavailable(f"{s['url']} did not answer the token request with JSON") from None
    if "access_token" not in body:
        reason = (body.get("error") or {}).get("message", "no access_token in the answer")
        raise ArcGISAuthError(f"the portal refused {PREFIX}CLIENT_ID/{PREFIX}CLIENT_SECRET: {reason}")
    return body["access_token"]


def connect(env=None):
    """A signed-in `arcgis.gis.GIS`, or ArcGISConfigError / ArcGISAuthError / PortalUnavailable."""
    from arcgis.gis import GIS
    s = settings(env)
    logging.getLogger("arcgis").setLevel(logging.ERROR)   # not the verify_cert warning on every sign-in
    what = {"api_key": f"{PREFIX}API_KEY", "client": f"{PREFIX}CLIENT_ID/{PREFIX}CLIENT_SECRET",
            "user": f"{PREFIX}USERNAME/{PREFIX}PASSWORD"}[s["kind"]]
    try:
        if s["kind"] == "user":
            user, password = s["secrets"]
            gis = GIS(s["url"], user, password, verify_cert=s["verify"], use_gen_token=True)
        else:
            key = s["secrets"][0] if s["kind"] == "api_key" else _app_token(s)
            gis = GIS(s["url"], api_key=key, verify_cert=s["verify"])
        me = gis.users.me
    except (ArcGISAuthError, PortalUnavailable):
        raise
    except requests.RequestException as exc:
        raise PortalUnavailable(f"cannot reach {s['url']}: {exc}") from None
    except Exception as exc:   # the package raises bare Exceptions carrying the portal's message
        text = str(exc)
        if any(w in text.lower() for w in ("invalid username", "unable to generate token", "invalid token",
                                           "token required", "not authorized")):
            raise ArcGISAuthError(f"the portal refused {what}: {text.splitlines()[0]}") from None
        first = text.splitlines()[0] if text else repr(exc)
        raise PortalUnavailable(f"cannot sign in to {s['url']}: {first}") from None
    if me is None:
        raise ArcGISAuthError(f"the portal refused {what}: the session is anonymous "
                              "(check the key/credentials and their privileges)")
    return gis


_session = {}


def session():
    """This process's signed-in GIS, made on first use (the outbox worker and the geocoder share it)."""
    if "gis" not in _session:
        _session["gis"] = connect()
    return _session["gis"]


def forget_session():
    """Drop the cached sign-in: the next session() signs in again (after a failure or token expiry)."""
    _session.pop("gis", None)
