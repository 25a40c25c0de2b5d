"""Typed domain errors. The web layer maps them to HTTP in one place (app/errors.py)."""


class Pin311Error(Exception):
    """Base class: `status` is the HTTP status a web client should see, `code` a stable identifier."""
    status = 400
    code = "bad_request"

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self):
        body = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class InvalidInput(Pin311Error):
    code = "invalid_input"


class InvalidLocation(InvalidInput):
    code = "invalid_location"


class OutsideJurisdiction(Pin311Error):
    code = "outside_jurisdiction"


class AddressNotFound(Pin311Error):
    code = "address_not_found"


class AmbiguousAddress(Pin311Error):
    code = "ambiguous_address"

    def __init__(self, message, candidates, **kw):
        super().__init__(message, **kw)
        self.candidates = candidates


class UnknownService(Pin311Error):
    code = "unknown_service"


class InvalidAttribute(InvalidInput):
    code = "invalid_attribute"


class NotFound(Pin311Error):
    code = "not_found"
    status = 404


class Forbidden(Pin311Error):
    code = "forbidden"
    status = 403


class Conflict(Pin311Error):
    code = "conflict"
    status = 409


class LayerImportError(Pin311Error):
    code = "layer_import_failed"
