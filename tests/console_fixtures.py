"""What the agent-console tests share: opening the console, picking from its lists, placing the pin, making tickets."""
import re
import time

from gis import intake
from tests.conftest import browser_login


CAMBRIDGE = (42.3736, -71.1097)
SOUTH_BOSTON = (42.3345, -71.0398)      # 615 E Fourth St: police C6
PROJECT = "([lat, lon]) => { const p = window.pin311Console.map.project([lon, lat]); return [p.x, p.y]; }"
JUMP = "([lat, lon]) => window.pin311Console.map.jumpTo({center: [lon, lat], zoom: 15})"


def _open_console(page, live_server, username, path="/agent/"):
    browser_login(page, live_server, username)
    page.wait_for_url(re.compile(r".*/agent/.*"))
    if path != "/agent/":
        page.goto(f"{live_server}{path}")
    page.wait_for_function("window.pin311Console && window.pin311Console.map.loaded()", timeout=20000)


def _pick(page, box, words, option_text):
    page.fill(box, words)
    wanted = f"{box.replace('-search', '-options')} li[role=option]:has-text('{option_text}')"
    # Visible, not merely attached: a closed list keeps its last options (hidden, for ↓), so a box searched
    # before holds a match ~0.2 s before this search's answer opens the list.
    page.wait_for_selector(wanted)
    options = page.locator(f"{box.replace('-search', '-options')} li[role=option]")
    for i in range(options.count()):   # walk to the option with the keyboard, as an agent would
        if option_text in options.nth(i).inner_text():
            break
        page.press(box, "ArrowDown")
    page.press(box, "Enter")


def _drag_pin_to(page, lat, lon):
    """Drag the marker with the mouse so that it lands on (lat, lon)."""
    src = page.evaluate("""() => { const m = window.pin311Console.map;
        const el = document.querySelector('.maplibregl-marker');
        const p = m.project([+el.dataset.lon, +el.dataset.lat]); return [p.x, p.y]; }""")
    dst = page.evaluate(PROJECT, [lat, lon])
    box = page.locator(".maplibregl-marker").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 3
    page.mouse.move(x, y)
    page.mouse.down()
    steps = 12
    for i in range(1, steps + 1):
        page.mouse.move(x + (dst[0] - src[0]) * i / steps, y + (dst[1] - src[1]) * i / steps)
        time.sleep(0.03)
    page.mouse.up()


def _ticket(conn, lat, lon, phone=None, first_name=None, service="animal-generic", attributes=None,
            actor="agent:other"):
    contact = {"phone": phone, "first_name": first_name} if phone else {}
    return intake.submit_request(conn, intake.NewRequest(
        service_code=service, lat=lat, lon=lon, attributes=attributes or {"animal_type": "dog"},
        description="earlier call", channel="agent", actor=actor, contact=contact))
