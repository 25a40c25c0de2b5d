"""Every page works under the app's real Content-Security-Policy (no inline script, no eval, no CDN)."""
import pytest

from tests.conftest import browser_login

PAGES = [  # (path, role signed in or None, a selector that shows the page rendered)
    ("/", None, "main"),
    ("/map", None, "canvas.maplibregl-canvas"),
    ("/report", None, "form"),
    ("/agent/", "agent", "canvas.maplibregl-canvas"),
    ("/crew/", "crew", "main"),
    ("/dashboards/", "analyst", "main"),
    ("/account/password", "agent", "#password-form"),
]


@pytest.mark.browser
@pytest.mark.parametrize("path, role, ready", PAGES)
def test_page_runs_under_the_real_csp(browser, live_server, staff, path, role, ready):
    context = browser.new_context(viewport={"width": 1366, "height": 768})   # CSP enforced
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        if role:
            browser_login(page, live_server, staff[role])
        answer = page.goto(f"{live_server}{path}")
        if answer.status == 404:
            pytest.skip(f"{path} is not served by this build")
        assert "Content-Security-Policy" in answer.headers or "content-security-policy" in answer.headers
        page.wait_for_selector(ready, timeout=15000)
        page.wait_for_timeout(1500)   # let scripts, tiles and workers start
        csp = [p for p in problems if "Content Security Policy" in p or "Refused to" in p]
        assert not csp, csp
    finally:
        context.close()
