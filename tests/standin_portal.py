"""A local HTTPS stand-in for ArcGIS Online / Enterprise, for tests of the real `arcgis` client.

It speaks the REST calls `arcgis` 2.4.4 makes (see shared/notes/arcgis-portal-calls.md and the ArcGIS
REST API): portal info/self, generateToken, OAuth client credentials, users, content items and
folders, createService, addToDefinition, addItem, search, FeatureServer service/layer JSON,
applyEdits and query, and a GeocodeServer's findAddressCandidates. What it receives stays in memory
(`portal.items`, `portal.layer(name)`) so a test can assert what ArcGIS Online would hold.

Failure on demand: `portal.fail(n, status=500|429, retry_after=s)` answers the next n calls with that
HTTP status; `portal.down = "500" | "drop"` fails every call until cleared (a dropped connection
closes the socket without an answer); `portal.expire_tokens()` makes every issued token answer 498.
"""
import email.parser
import itertools
import json
import re
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

USER, PASSWORD, API_KEY = "admin", "s3cret-pass", "AAPK-standin-key"
CLIENT_ID, CLIENT_SECRET = "standin-client", "standin-client-secret"
MAX_RECORDS = 2000


def _error(code, message):
    return {"error": {"code": code, "message": message, "details": []}}


class HostedLayer:
    """One layer of a hosted feature service: its definition and its features by objectId."""

    def __init__(self, definition):
        self.definition = definition
        self.features = {}
        self.next_oid = itertools.count(1)
        self.unique = [i["fields"] for i in definition.get("indexes", []) if i.get("isUnique")]
        self.index = {name: {} for name in self.unique}     # unique field -> value -> objectId

    def rows(self):
        return [self.features[k] for k in sorted(self.features)]

    def _clash(self, attrs, oid=None):
        for name in self.unique:
            holder = self.index[name].get(attrs.get(name), oid) if name in attrs else oid
            if holder != oid:
                return f"duplicate value in unique field {name}"
        return None

    def _reindex(self, oid, old=None):
        for name in self.unique:
            if old is not None:
                self.index[name].pop(old.get(name), None)
            if oid in self.features:
                self.index[name][self.features[oid]["attributes"].get(name)] = oid

    def apply_edits(self, adds, updates, deletes):
        field_names = {f["name"] for f in self.definition["fields"]}
        out = {"addResults": [], "updateResults": [], "deleteResults": []}
        for feat in adds:
            attrs = {k: v for k, v in feat.get("attributes", {}).items() if k in field_names and k != "OBJECTID"}
            clash = self._clash(attrs)
            if clash:
                out["addResults"].append({"objectId": -1, "success": False,
                                          "error": {"code": 1019, "description": clash}})
                continue
            oid = next(self.next_oid)
            attrs.update(OBJECTID=oid, GlobalID="{%s}" % str(uuid.uuid4()).upper())
            self.features[oid] = {"attributes": attrs, "geometry": feat.get("geometry")}
            self._reindex(oid)
            out["addResults"].append({"objectId": oid, "globalId": attrs["GlobalID"], "success": True})
        for feat in updates:
            attrs = feat.get("attributes", {})
            oid = attrs.get("OBJECTID")
            if oid not in self.features or self._clash(attrs, oid):
                out["updateResults"].append({"objectId": oid if oid else -1, "success": False,
                                             "error": {"code": 1019,
                                                       "description": "Update for the object was not attempted."}})
                continue
            kept = self.features[oid]
            old = dict(kept["attributes"])
            kept["attributes"].update({k: v for k, v in attrs.items() if k in field_names})
            if feat.get("geometry"):
                kept["geometry"] = feat["geometry"]
            self._reindex(oid, old)
            out["updateResults"].append({"objectId": oid, "success": True})
        for oid in deletes:
            gone = self.features.pop(oid, None)
            ok = gone is not None
            if ok:
                self._reindex(oid, gone["attributes"])
            out["deleteResults"].append({"objectId": oid, "success": ok} if ok else
                                        {"objectId": oid, "success": False,
                                         "error": {"code": 1019, "description": "not found"}})
        return out

    def select(self, where, object_ids):
        rows = self.rows()
        if object_ids:
            wanted = {int(x) for x in str(object_ids).split(",") if x.strip()}
            rows = [r for r in rows if r["attributes"]["OBJECTID"] in wanted]
        return [r for r in rows if _matches(where, r["attributes"])]


_IN = re.compile(r"^\s*(\w+)\s+IN\s*\((.*)\)\s*$", re.I | re.S)
_EQ = re.compile(r"^\s*(\w+)\s*=\s*(.+?)\s*$", re.S)


def _literal(token):
    token = token.strip()
    if token.startswith("'") and token.endswith("'"):
        return token[1:-1].replace("''", "'")
    return float(token) if "." in token else int(token)


def _matches(where, attrs):
    """The few SQL-92 forms a client of this stand-in sends: 1=1, field = v, field IN (...), joined by AND."""
    for part in re.split(r"\s+AND\s+", (where or "1=1").strip(), flags=re.I):
        if part.replace(" ", "") == "1=1":
            continue
        m = _IN.match(part)
        if m:
            values = {_literal(v) for v in re.findall(r"'(?:[^']|'')*'|[-\d.]+", m.group(2))}
            if attrs.get(m.group(1)) not in values:
                return False
            continue
        m = _EQ.match(part)
        if not m:
            raise ValueError(f"unsupported where clause: {part}")
        if attrs.get(m.group(1)) != _literal(m.group(2)):
            return False
    return True


class Portal:
    """The stand-in's state; `start()` serves it on https://127.0.0.1:<port>."""

    def __init__(self):
        self.items, self.item_data, self.services, self.folders = {}, {}, {}, {}
        self.tokens = {}            # token -> expiry (epoch s)
        self.calls = []             # (method, path) of every call received
        self.gazetteer = []            # the geocoder's addresses: {address, x, y, type, city, zip}
        self.down = None
        self.before_answer = None      # hook(path) run after a call took effect, before its answer is sent
        self._faults = []
        self._lock = threading.RLock()
        self._server = None

    # ---- failure injection -------------------------------------------------------------------
    def fail(self, times, status=500, retry_after=None):
        with self._lock:
            self._faults.extend([(status, retry_after)] * times)

    def expire_tokens(self):
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = 0

    def _fault(self):
        with self._lock:
            if self.down:
                return (self.down, None)
            return self._faults.pop(0) if self._faults else None

    # ---- what ArcGIS Online would hold ---------------------------------------------------------
    def layer(self, service_name, layer_id=0):
        return self.services[service_name]["layers"][layer_id]

    def items_of_type(self, kind):
        return [i for i in self.items.values() if i["type"] == kind]

    # ---- serving ------------------------------------------------------------------------------
    @property
    def url(self):
        return f"https://127.0.0.1:{self._server.server_address[1]}/portal"

    @property
    def host(self):
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self):
        cert_dir = Path(tempfile.mkdtemp(prefix="standin-portal-"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", cert_dir / "key.pem", "-out", cert_dir / "cert.pem"],
                       check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_dir / "cert.pem", cert_dir / "key.pem")
        portal = self

        class Handler(_Handler):
            state = portal

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # the TLS handshake happens in each connection's own thread (see _Handler.setup): done in
        # accept(), one stalled client would block the whole server
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                              do_handshake_on_connect=False)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    # ---- auth ---------------------------------------------------------------------------------
    def token_state(self, token):
        """None (no token), "ok", or "invalid"."""
        if not token:
            return None
        if token == API_KEY:
            return "ok"
        expiry = self.tokens.get(token)
        return "ok" if expiry and expiry > time.time() else "invalid"

    def issue_token(self, seconds=3600):
        token = uuid.uuid4().hex
        self.tokens[token] = time.time() + seconds
        return token


class _Handler(BaseHTTPRequestHandler):
    state: Portal
    protocol_version = "HTTP/1.1"
    timeout = 30            # an idle or stalled connection ends its thread instead of holding it

    def setup(self):
        super().setup()
        try:
            self.connection.do_handshake()
        except (OSError, ValueError):
            self.close_connection = True
            self.rfile = self.wfile = None

    def handle(self):
        if self.rfile is not None:
            super().handle()

    def finish(self):
        if self.rfile is not None:
            super().finish()

    def log_message(self, *args):      # quiet test output
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _form(self):
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            for part in msg.get_payload():
                query[part.get_param("name", header="content-disposition")] = part.get_payload(decode=True).decode()
        elif body:
            query.update({k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()})
        return query

    def _handle(self, method):
        path = urlsplit(self.path).path.rstrip("/")
        form = self._form()
        portal = self.state
        with portal._lock:
            portal.calls.append((method, path))
        fault = portal._fault()
        if fault:
            status, retry_after = fault
            if status == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return self._send(int(status), {"error": {"code": int(status), "message": "stand-in failure"}}, headers)
        auth = self.headers.get("X-Esri-Authorization", "")
        token = auth.split(" ", 1)[1] if auth.startswith("Bearer ") else form.get("token")
        try:
            with portal._lock:
                answer = route(portal, method, path, form, portal.token_state(token))
        except Exception as exc:   # a bug in the stand-in shows as an ArcGIS-style error, not a hang
            answer = _error(400, f"stand-in could not handle {path}: {exc!r}")
        if portal.before_answer:
            portal.before_answer(path)
        if answer is None:
            return self._send(404, {"error": {"code": 404, "message": "Not found"}})
        self._send(200, answer)

    def _send(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:         # the client died meanwhile (a killed worker): what it sent still holds
            self.close_connection = True


from tests.standin_routes import route  # noqa: E402  (routes need the classes above)


def start():
    return Portal().start()
