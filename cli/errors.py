"""The CLI's own failure: a user mistake detected on this side, printed as ``error: <msg>``."""

from __future__ import annotations


class CliError(Exception):
    """A client-side problem (bad flag, unreadable file, unknown kind); exit code 1."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
