"""HTTP endpoints: ``POST /validate``, ``/healthz``, ``/readyz``, ``/metrics``.

``/validate`` works on the raw body: FastAPI's body validation and response encoding would
parse and re-walk a 3 MB pod for nothing, and Starlette's request, response and exception
layers cost more per review than deciding does with a warm cache, so :class:`FastValidate`
answers it as plain ASGI before the framework's stack (the Starlette route below serves the
same function when the middleware is absent). A decision is always a 200 AdmissionReview (a
deny is ``allowed: false``); only a body that is not an AdmissionReview v1 gets a 4xx with a
message saying what is wrong. An unexpected failure inside a review is answered as a
refusal, the way ``failurePolicy: Fail`` would treat it, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from webhook import review

if TYPE_CHECKING:
    from webhook.app import Services

log = logging.getLogger(__name__)
JSON = "application/json"


class TooLarge(Exception):
    """The body exceeds the configured limit."""


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _bad(services: Services, status: int, reason: str, message: str) -> tuple[int, bytes]:
    services.metrics.bad_requests.labels(reason).inc()
    return status, review.error_body(message)


async def answer(services: Services, body: bytes) -> tuple[int, bytes]:
    """Status and JSON body for one posted AdmissionReview; never raises."""
    started = time.perf_counter()
    settings = services.settings
    try:
        admission = review.parse(body)
    except review.ReviewError as err:
        return _bad(services, 400, "not_a_review", str(err))
    kind = admission.kind.kind
    try:
        async with asyncio.timeout(settings.deadline):
            result = await services.reviewer.review(admission)
        content = review.response(
            admission.uid,
            result.allowed,
            message=result.message,
            warnings=result.warnings,
            annotations=result.annotations,
        )
        verdict = result.verdict
    except TimeoutError:
        services.metrics.internal_errors.inc()
        log.warning("review %s of %s timed out after %.1fs", admission.uid, kind, settings.deadline)
        content = review.response(
            admission.uid,
            False,
            message=f"minerguard: review did not finish within {settings.deadline:g}s",
        )
        verdict = "error"
    except Exception:  # a bug must not become a 500: answered, logged and counted
        services.metrics.internal_errors.inc()
        log.exception("review %s of %s failed", admission.uid, kind)
        content = review.response(
            admission.uid, False, message="minerguard: internal error while reviewing (logged)"
        )
        verdict = "error"
    services.metrics.review(kind, admission.operation, verdict, time.perf_counter() - started)
    return 200, content


def _too_large(services: Services) -> tuple[int, bytes]:
    limit = services.settings.max_request_bytes
    return _bad(services, 413, "too_large", f"request body over {limit} bytes")


async def validate(request: Request) -> Response:
    """``POST /validate`` as a Starlette route."""
    services = _services(request)
    try:
        body = await _receive(request.scope, request.receive, services.settings.max_request_bytes)
    except TooLarge:
        status, content = _too_large(services)
    except ClientDisconnect:
        return Response(status_code=400)
    else:
        status, content = await answer(services, body)
    return Response(content, status_code=status, media_type=JSON)


class FastValidate:
    """Pure ASGI middleware answering ``POST /validate``; everything else goes on to FastAPI."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer /validate POSTs; pass everything else on."""
        if scope["type"] != "http" or scope["path"] != "/validate" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        services: Services = self.state.services
        try:
            body = await _receive(scope, receive, services.settings.max_request_bytes)
        except TooLarge:
            status, content = _too_large(services)
        except ClientDisconnect:
            return
        else:
            status, content = await answer(services, body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(content)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _receive(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused beyond ``limit`` bytes (declared or streamed)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            raise TooLarge
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks += message.get("body", b"")
        if len(chunks) > limit:
            raise TooLarge
        if not message.get("more_body", False):
            return bytes(chunks)


async def healthz(request: Request) -> Response:
    """Liveness: the process serves requests."""
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """Readiness: policies are loaded (or the sync grace ran out and the fallback applies)."""
    services = _services(request)
    if services.ready():
        return PlainTextResponse("ok")
    return PlainTextResponse("policies not loaded yet", status_code=503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's series."""
    services = _services(request)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/validate", validate, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
