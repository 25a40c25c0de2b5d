"""The drill's clients (a second process, started by bench/drill.py): mixed requests, each logical request
retried with its own idempotency key as a real client would (connection errors, timeouts, 5xx, 429; with
back-off, up to a deadline). Writes what each attempt got to --out as JSON.

    .venv/bin/python bench/drill_load.py --base URL --key KEY --seconds S --clients N --points P.json --out O.json
"""
import argparse
import json
import math
import random
import sys
import threading
import time
import uuid
from pathlib import Path

# Services with no required attributes and not sensitive (bench/drill.py checks them against the clone).
SERVICES = ("pothole", "sidewalk-repair", "street-cleaning", "general-lighting", "rodent-activity")


class Load:
    def __init__(self, base, key, seconds, clients, points, features):
        import requests
        self.requests = requests
        self.base, self.key, self.seconds, self.clients = base, key, seconds, clients
        self.points, self.features = points, features
        self.records, self.attempts = [], []
        self.lock = threading.Lock()

    def run(self):
        stop_at = time.time() + self.seconds
        threads = [threading.Thread(target=self.client, args=(i, stop_at)) for i in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def client(self, n, stop_at):
        rng = random.Random(n)
        session = self.requests.Session()
        kinds = ["intake"] * 5 + ["locate"] * 3
        if "open311" in self.features:
            kinds += ["open311_post", "open311_get"]
        if "tiles" in self.features:
            kinds += ["tile"]
        while time.time() < stop_at:
            kind = rng.choice(kinds)
            rec = self.one(session, rng, kind)
            with self.lock:
                self.records.append(rec)

    def _call(self, session, method, path, **kw):
        started = time.time()
        try:
            r = session.request(method, self.base + path, timeout=10, **kw)
            status, body = r.status_code, r
        except self.requests.RequestException as exc:
            status, body = type(exc).__name__, None
        with self.lock:
            self.attempts.append((started, time.time(), status))
        return status, body

    def one(self, session, rng, kind):
        """One logical request, retried with the same idempotency key until answered or the deadline."""
        lat, lon = rng.choice(self.points)
        key = str(uuid.uuid4())
        headers = {"X-Api-Key": self.key, "Idempotency-Key": key}
        if kind == "intake":
            contact = {"first_name": "Drill", "email": f"drill-{key}@example.test"} if rng.random() < .5 else {}
            args = ("POST", "/api/v1/requests"), {"json": {
                "service_code": rng.choice(SERVICES), "lat": lat, "lon": lon, "description": f"drill {key}",
                "contact": contact, "channel": "phone"}, "headers": headers}
        elif kind == "open311_post":
            args = ("POST", "/open311/v2/requests.json"), {"data": {
                "service_code": rng.choice(SERVICES), "lat": lat, "long": lon, "description": f"drill {key}",
                "email": f"drill-{key}@example.test", "api_key": self.key}, "headers": {"Idempotency-Key": key}}
        elif kind == "open311_get":
            args = ("GET", "/open311/v2/requests.json?status=open"), {}
        elif kind == "tile":
            z = 14
            x, y = _tile(lat, lon, z)
            args = ("GET", f"/tiles/requests/{z}/{x}/{y}.mvt"), {}
        else:
            args = ("GET", f"/api/v1/locate?lat={lat}&lon={lon}"), {"headers": {"X-Api-Key": self.key}}
        rec = {"kind": kind, "key": key, "ack": False, "public_id": None, "tries": 0, "final": None,
               "writes": kind in ("intake", "open311_post")}
        deadline = time.time() + 30
        delay = 0.2
        while True:
            rec["tries"] += 1
            status, resp = self._call(session, *args[0], **args[1])
            rec["final"] = status
            if isinstance(status, int) and status < 500 and status != 429:
                if status in (200, 201) and rec["writes"]:
                    body = resp.json()
                    if isinstance(body, list):  # Open311 answers a list
                        body = body[0] if body else {}
                    rec["public_id"] = body.get("public_id") or body.get("service_request_id")
                    rec["ack"] = bool(rec["public_id"])
                elif status in (200, 201, 204, 304):
                    rec["ack"] = True
                return rec
            if time.time() + delay > deadline:
                return rec
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 2.0)


def _tile(lat, lon, z):
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def load_main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--base"), p.add_argument("--key"), p.add_argument("--seconds", type=float)
    p.add_argument("--clients", type=int), p.add_argument("--points"), p.add_argument("--out")
    p.add_argument("--features", default="")
    a = p.parse_args(argv)
    load = Load(a.base, a.key, a.seconds, a.clients, json.loads(Path(a.points).read_text()),
                a.features.split(","))
    load.run()
    Path(a.out).write_text(json.dumps({"records": load.records, "attempts": load.attempts}))


if __name__ == "__main__":
    load_main(sys.argv[1:])
