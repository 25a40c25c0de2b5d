"""Security headers on every response, the checks that keep the session cookie honest, and which proxies'
word on the client's address is taken.

CSP: scripts only from our own origin (every page loads static JS files; JSON settings ride in
`<script type="application/json">` blocks, which browsers never execute). MapLibre's standard build starts
its tile worker from a blob: URL, hence `worker-src blob:`; its canvases and sprites use data:/blob: images.
An optional base map (PIN311_BASEMAP_URL) is the only other origin allowed, for tiles and images.
"""
from urllib.parse import urlsplit

from flask import Request as FlaskRequest, current_app, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

STAFF_PREFIXES = ("/agent", "/crew", "/admin", "/dashboards", "/api/", "/login")
# Endpoints whose body may exceed MAX_CONTENT_LENGTH, and the setting that bounds theirs instead.
LARGER_BODIES = {"public.report_submit": "MAX_REPORT_BYTES"}


class Request(FlaskRequest):
    """Flask's request with a body limit per endpoint. A body over the limit is refused before any of it is
    read (413), so a form sent without JavaScript loses everything typed in it: a resident whose phone photo
    is over the photo limit would have to type the report again. The report form's larger bound lets the
    body arrive, and the photo alone is refused, the form shown again as typed."""

    @property
    def max_content_length(self):
        setting = LARGER_BODIES.get(self.endpoint)
        return current_app.config[setting] if setting else super().max_content_length


def _origin(url):
    parts = urlsplit(url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def content_security_policy(basemap_url=""):
    extra = _origin(basemap_url)
    more = f" {extra}" if extra else ""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: blob:{more}",
        f"connect-src 'self'{more}",
        "worker-src 'self' blob:",
        "child-src 'self' blob:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class CookieSession(SecureCookieSessionInterface):
    """Flask's signed-cookie session, without building a signer for a request that carries no session
    cookie (API and Open311 calls, a first page view): there is nothing to verify."""

    def open_session(self, app, request):
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def trust_proxies(app, hops):
    """Behind `hops` proxies, the client is the address the outermost of them saw (X-Forwarded-For), not
    the proxy's: rate limits and the contact audit key on request.remote_addr. Only that many entries
    are believed, so a client cannot pick its own address by sending the header itself. X-Forwarded-Host
    is not trusted (proxies usually pass Host through and leave that header to the client)."""
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def init_app(app):
    app.request_class = Request
    app.session_interface = CookieSession()
    trust_proxies(app, app.config.get("PROXY_HOPS", 0))
    csp = content_security_policy(app.config.get("BASEMAP_URL", ""))
    production = app.config.get("ENV") == "production"
    if production:
        # Cookies only over HTTPS in production (config sets these; enforce them here in case of overrides).
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config["REMEMBER_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"

    defaults = [
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(self), geolocation=(self), microphone=()"),
    ] + ([("Strict-Transport-Security", "max-age=31536000; includeSubDomains")] if production else [])

    @app.after_request
    def security_headers(response):
        headers = response.headers
        present = {name.lower() for name in headers.keys()}     # a view may have set its own
        headers.extend([(name, value) for name, value in defaults if name.lower() not in present])
        # Staff pages and API answers carry callers' details: never keep them in shared caches.
        if "cache-control" not in present and request.path.startswith(STAFF_PREFIXES):
            headers["Cache-Control"] = "no-store"
        return response
