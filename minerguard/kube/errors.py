"""Typed API errors carrying the parsed ``Status``, so callers branch on type, not text."""

from __future__ import annotations

import json
import socket
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from minerguard.errors import MinerguardError


class ApiError(MinerguardError):
    """A failed call to the Kubernetes API."""

    retryable = False

    def __init__(self, message: str, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


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
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            reason = body.get("reason")
        cls = _BY_STATUS.get(status, Unavailable if status >= 500 or status == 0 else ApiError)
        return cls(f"HTTP {status}: {message}", status=status, reason=reason)
    if isinstance(err, ConfigException):
        return ConfigError(f"no cluster configuration: {err}")
    if isinstance(err, urllib3.exceptions.HTTPError | OSError | socket.timeout | TimeoutError):
        return Unavailable(f"API server unreachable: {err}")
    return ApiError(f"{type(err).__name__}: {err}")
