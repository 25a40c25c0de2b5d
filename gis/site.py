"""The public site's own address, PIN311_PUBLIC_URL: read and checked here only, for the web app (stored
photo links, app/config.py) and the worker (the status-page link its e-mails end with, gis/notify.py)."""
import os
from urllib.parse import urlsplit

PUBLIC_URL = "PIN311_PUBLIC_URL"


def public_url(env=os.environ):
    """The site's address ('https://311.example.gov', no trailing slash), or '' when it is not set.

    ValueError when it is set to anything but an http(s) site address with nothing after it: links made
    from it are stored and sent to residents, so a wrong value must stop whatever reads it, not go out.
    """
    url = (env.get(PUBLIC_URL) or "").strip().rstrip("/")
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query
                or parts.fragment):
        raise ValueError(f"{PUBLIC_URL} must be the site's address such as https://311.example.gov, got {url!r}")
    return url
