"""Errors of the API, one class per kind of status, each with the API's
`code` and every `details[].path`."""

from __future__ import annotations

from typing import Any, Optional

from ._routes import Diagnostic


class BoxfenceError(Exception):
    """A failed call. `status` is 0 when no answer came (connection refused, TLS failure)."""

    def __init__(self, status: int, code: str, message: str, details: Optional[list[Diagnostic]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: list[Diagnostic] = details or []

    @property
    def paths(self) -> list[str]:
        """The JSON path of each problem, in the order the API listed them."""
        return [detail["path"] for detail in self.details]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class ValidationError(BoxfenceError):
    """400 (or 413): the request broke a rule; `paths` names each place."""


class AuthError(BoxfenceError):
    """401 or 403: no valid token, or one that may not do this."""


class NotFoundError(BoxfenceError):
    """404: no such object, or one the token may not see."""


class ConflictError(BoxfenceError):
    """409: the request conflicts with what is stored."""


class RateLimitError(BoxfenceError):
    """429: a cap is reached; retry after `retry_after` seconds."""

    retry_after: Optional[float] = None


class ServerError(BoxfenceError):
    """5xx: the daemon could not do it (no data plane, store unavailable, ...)."""


def _kind(status: int) -> type[BoxfenceError]:
    if status in (400, 413):
        return ValidationError
    if status in (401, 403):
        return AuthError
    kinds: dict[int, type[BoxfenceError]] = {404: NotFoundError, 409: ConflictError, 429: RateLimitError}
    if status in kinds:
        return kinds[status]
    return ServerError if status >= 500 else BoxfenceError


def error_for(status: int, body: Any, retry_after: Optional[str]) -> BoxfenceError:
    """The error for an answer with `status` and its parsed body (None if not JSON)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code, message, details = error.get("code"), error.get("message"), error.get("details")
    made = _kind(status)(
        status,
        code if isinstance(code, str) else "http_error",
        message if isinstance(message, str) else f"HTTP {status}",
        details if isinstance(details, list) else [],
    )
    if isinstance(made, RateLimitError) and retry_after is not None:
        made.retry_after = float(retry_after)
    return made
