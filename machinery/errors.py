"""API errors as exceptions, mapped one-to-one onto Kubernetes ``Status`` reasons.

Hierarchy::

    ApiError                      (any Status failure; carries code, reason, message, details)
    ├── BadRequest         400
    ├── Unauthorized       401
    ├── Forbidden          403
    ├── NotFound           404
    ├── MethodNotAllowed   405
    ├── NotAcceptable      406
    ├── Conflict           409    (stale resourceVersion)
    │   └── AlreadyExists  409
    ├── Gone               410    (reason Expired or Gone)
    ├── RequestEntityTooLarge 413
    ├── UnsupportedMediaType  415
    ├── Invalid            422    (details.causes name the fields)
    ├── TooManyRequests    429
    ├── InternalError      500
    └── ServiceUnavailable 503

The server raises these and renders them with :meth:`ApiError.status`; the client parses a
``Status`` body back into the same class with :func:`from_status`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """A failed API call, as a Kubernetes ``Status``."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        causes: list[dict[str, str]] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        if causes:
            self.details["causes"] = causes
        if reason:
            self.reason = reason  # type: ignore[misc]

    def status(self) -> dict[str, Any]:
        """The ``Status`` object for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class NotAcceptable(ApiError):
    code, reason = 406, "NotAcceptable"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class AlreadyExists(Conflict):
    code, reason = 409, "AlreadyExists"


class Gone(ApiError):
    code, reason = 410, "Expired"


class RequestEntityTooLarge(ApiError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    code, reason = 429, "TooManyRequests"


class InternalError(ApiError):
    code, reason = 500, "InternalError"


class ServiceUnavailable(ApiError):
    code, reason = 503, "ServiceUnavailable"


_BY_REASON: dict[str, type[ApiError]] = {
    cls.reason: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        Conflict,
        AlreadyExists,
        Gone,
        RequestEntityTooLarge,
        UnsupportedMediaType,
        Invalid,
        TooManyRequests,
        InternalError,
        ServiceUnavailable,
    )
}
_BY_CODE: dict[int, type[ApiError]] = {}
for _cls in _BY_REASON.values():
    _BY_CODE.setdefault(_cls.code, _cls)


def from_status(status: dict[str, Any], http_code: int | None = None) -> ApiError:
    """Rebuild the exception a ``Status`` body describes (unknown reasons fall back to the code)."""
    reason = str(status.get("reason") or "")
    code = int(status.get("code") or http_code or 500)
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, ApiError)
    err = cls(
        str(status.get("message") or reason or f"HTTP {code}"),
        details=status.get("details"),
        reason=reason or None,
    )
    err.code = code  # type: ignore[misc]
    return err


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> Invalid:
    """A 422 Invalid naming every offending field, worded as Kubernetes words it."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    return Invalid(
        f'{qualified} "{name}" is invalid: {summary}',
        details={"name": name, "group": group, "kind": kind},
        causes=causes,
    )


class PermanentError(Exception):
    """A reconcile failure that retrying cannot fix (the user's mistake): no requeue."""


class TemporaryError(Exception):
    """A reconcile failure worth retrying after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay
