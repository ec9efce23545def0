"""Typed API errors carrying the parsed ``Status``, so callers branch on type, not text."""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import socket
import time
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from minerguard.errors import MinerguardError


class ApiError(MinerguardError):
    """A failed call to the Kubernetes API."""

    retryable = False

    def __init__(
        self,
        message: str,
        status: int | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        """Seconds the server asked us to wait (``Retry-After``, or the Status's
        ``details.retryAfterSeconds``); None when it did not say."""


class NotFound(ApiError):
    """404: the object (or the resource type) does not exist."""


class Conflict(ApiError):
    """409: already exists, or a stale resourceVersion."""


class Forbidden(ApiError):
    """401/403: RBAC does not allow it."""


class Invalid(ApiError):
    """400/422: the API server refused the object."""


class Unavailable(ApiError):
    """The API server could not be reached or answered 429/5xx: retry later."""

    retryable = True


class ConfigError(ApiError):
    """No usable cluster configuration (neither in-cluster nor kubeconfig)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: Invalid,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Conflict,
    422: Invalid,
    429: Unavailable,
}


MAX_RETRY_AFTER = 3600.0
"""A server's ``Retry-After`` is honoured up to an hour; a larger (or hostile) value is capped."""


def retry_after(value: object, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date (RFC 9110).

    None for a missing or unreadable value; never negative, at most :data:`MAX_RETRY_AFTER`.
    """
    if isinstance(value, bool) or value is None:
        return None
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            seconds = float(text)
        else:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _header(headers: Any, name: str) -> object:
    try:
        return headers.get(name) if headers is not None else None
    except AttributeError:
        return None


def translate(err: BaseException) -> ApiError:
    """The :class:`ApiError` for any exception the client raises."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, ApiException):
        status = err.status or 0
        message, reason = str(err.reason or ""), None
        body: Any = None
        try:
            body = json.loads(err.body) if err.body else None
        except (TypeError, ValueError):
            body = None
        wait = retry_after(_header(err.headers, "Retry-After"))
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            reason = body.get("reason")
            details = body.get("details")
            if wait is None and isinstance(details, dict):
                wait = retry_after(details.get("retryAfterSeconds"))
        cls = _BY_STATUS.get(status, Unavailable if status >= 500 or status == 0 else ApiError)
        return cls(f"HTTP {status}: {message}", status=status, reason=reason, retry_after=wait)
    if isinstance(err, ConfigException):
        return ConfigError(f"no cluster configuration: {err}")
    if isinstance(err, urllib3.exceptions.HTTPError | OSError | socket.timeout | TimeoutError):
        return Unavailable(f"API server unreachable: {err}")
    return ApiError(f"{type(err).__name__}: {err}")
