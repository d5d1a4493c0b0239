"""Errors from CRI calls.

Every failed RPC made through :mod:`kubelet.cri.client` raises a :class:`CriError` carrying the
gRPC status code and the runtime's message::

    CriError
    ├── RuntimeUnavailable   the socket is missing or nobody answers on it (retry later)
    ├── CriNotFound          the sandbox, container or image does not exist
    └── CriDeadlineExceeded  the call's deadline passed (the runtime may still finish it)
"""

from __future__ import annotations

import grpc


class CriError(Exception):
    """A failed CRI call: ``method``, gRPC ``code`` and the runtime's ``details``."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details


class RuntimeUnavailable(CriError):
    """The runtime endpoint does not answer (socket missing, runtime down or restarting)."""


class CriNotFound(CriError):
    """The object named in the request does not exist."""


class CriDeadlineExceeded(CriError):
    """The call did not finish before its deadline."""


_BY_CODE: dict[grpc.StatusCode, type[CriError]] = {
    grpc.StatusCode.UNAVAILABLE: RuntimeUnavailable,
    grpc.StatusCode.NOT_FOUND: CriNotFound,
    grpc.StatusCode.DEADLINE_EXCEEDED: CriDeadlineExceeded,
}


def from_rpc_error(method: str, err: grpc.RpcError, endpoint: str = "") -> CriError:
    """The :class:`CriError` subclass for a gRPC error raised by a stub call."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else "") or str(err)
    if code is grpc.StatusCode.UNAVAILABLE and endpoint:
        details = f"runtime at {endpoint} is unavailable: {details}"
    return _BY_CODE.get(code, CriError)(method, code, details)
