"""HTTP endpoints: ``POST /validate``, ``/validate/system``, ``/mutate``; health and metrics.

``/validate`` works on the raw body: FastAPI's body validation and response encoding would
parse and re-walk a 3 MB pod for nothing, and Starlette's request, response and exception
layers cost more per review than deciding does with a warm cache, so :class:`FastValidate`
answers it as plain ASGI before the framework's stack (the Starlette route below serves the
same function when the middleware is absent). A decision is always a 200 AdmissionReview (a
deny is ``allowed: false``); only a body that is not an AdmissionReview v1 gets a 4xx with a
message saying what is wrong. An unexpected failure inside a review is answered as a
refusal, the way ``failurePolicy: Fail`` would treat it, and counted.
``/mutate`` pins images to the digests judged (:mod:`webhook.pinning`) and stamps who created
pods and workloads (:mod:`webhook.stamping`); it never refuses.

No client can exhaust a worker: requests arrive under a deadline or their connection is
closed (:mod:`webhook.connections`), bodies are read under a size cap and a memory budget
(:mod:`webhook.bodies`; 413 or 503, and the connection is closed), and the
signature engine's work per review is bounded (:func:`minerguard.signatures.engine.budget`),
so a review of a hostile object costs milliseconds, not seconds, of the event loop every
other review shares. What the budget left unexamined is said in a warning and an audit
annotation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from minerguard.signatures import engine
from webhook import bodies, pinning, review

if TYPE_CHECKING:
    from webhook.app import Services

log = logging.getLogger(__name__)
JSON = "application/json"
CUT = "incomplete"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _bad(services: Services, status: int, reason: str, message: str) -> tuple[int, bytes]:
    services.metrics.bad_requests.labels(reason).inc()
    return status, review.error_body(message)


async def answer(
    services: Services, body: bytes | bytearray, *, system: bool = False
) -> tuple[int, bytes]:
    """Status and JSON body for one posted AdmissionReview; never raises.

    ``system``: the system namespaces' entry (``/validate/system``), judged with the policies'
    system views, counted in its own series and marked in the audit annotations.
    """
    started = time.perf_counter()
    reviewer = services.reviewer
    if system and services.system_reviewer is not None:
        reviewer = services.system_reviewer
    settings = services.settings
    try:
        # A body under SMALL holds too few list entries to matter (~8 ms to read at worst);
        # walking a typical review's lists would cost more than parsing it.
        items = max(settings.judge_words, settings.max_containers) + 1
        admission = review.parse(body, max_items=items if len(body) > bodies.SMALL else None)
    except review.ReviewError as err:
        return _bad(services, 400, "not_a_review", str(err))
    kind = admission.kind.kind
    try:
        with engine.budget(settings.judge_words, settings.judge_chars) as spent:
            async with asyncio.timeout(reviewer.deadline):
                result = await reviewer.review(admission)
        warnings, annotations = result.warnings, dict(result.annotations)
        if spent.cut:
            note = (
                f"minerguard: judged the first {settings.judge_words} words and "
                f"{settings.judge_chars} characters of this object's commands, variables and "
                "files; the rest was not examined"
            )
            warnings = (*warnings, note)
            annotations[CUT] = "; ".join(filter(None, (annotations.get(CUT), note)))
            services.metrics.bad_requests.labels("judging_budget").inc()
        content = review.response(
            admission.uid,
            result.allowed,
            message=result.message,
            warnings=warnings,
            annotations=annotations,
        )
        verdict = result.verdict
    except TimeoutError:
        services.metrics.internal_errors.inc()
        log.warning("review %s of %s timed out after %.1fs", admission.uid, kind, reviewer.deadline)
        content = review.response(
            admission.uid,
            False,
            message=f"minerguard: review did not finish within {reviewer.deadline:g}s",
        )
        verdict = "error"
    except Exception:  # a bug must not become a 500: answered, logged and counted
        services.metrics.internal_errors.inc()
        log.exception("review %s of %s failed", admission.uid, kind)
        content = review.response(
            admission.uid, False, message="minerguard: internal error while reviewing (logged)"
        )
        verdict = "error"
    seconds = time.perf_counter() - started
    services.metrics.review(kind, admission.operation, verdict, seconds, system=system)
    return 200, content


async def answer_system(services: Services, body: bytes | bytearray) -> tuple[int, bytes]:
    """``/validate/system``: the entry for the namespaces the policies exclude.

    Registered by the chart with ``failurePolicy: Ignore`` and a short timeout for
    kube-system and the other excluded namespaces (never the release namespace): an outage
    admits, and only conclusive evidence refuses (``spec.systemNamespaces``).
    """
    return await answer(services, body, system=True)


ANSWERS = {"/validate": answer, "/validate/system": answer_system, "/mutate": pinning.answer}
"""The AdmissionReview endpoints, each read under the same body limits."""


async def handle(services: Services, scope: Scope, receive: Receive) -> tuple[int, bytes] | None:
    """Status and body for one ``POST /validate``; None when the client went away.

    The body's lease on the memory budget is held until the answer is built, so the parsed
    review counts against the budget too.
    """
    settings = services.settings
    lease = services.bodies.lease(scope)
    deadline = asyncio.get_running_loop().time() + settings.body_timeout
    try:
        try:
            body = await bodies.read(scope, receive, settings.max_request_bytes, lease, deadline)
            await lease.hold(bodies.parsed_cost(body), deadline)
        except bodies.TooLarge:
            limit = settings.max_request_bytes
            return _bad(
                services,
                413,
                "too_large",
                f"request body over {limit} bytes, or over the webhook's memory budget parsed",
            )
        except TimeoutError:
            return _bad(services, 503, "busy", "webhook busy: no memory for this body in time")
        except bodies.ClientDisconnect:
            return None
        return await ANSWERS[scope["path"]](services, body)
    finally:
        lease.release()


def _headers(status: int, content: bytes) -> list[tuple[bytes, bytes]]:
    """A refused body may still be arriving: close the connection instead of reading it."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content))]
    if status != 200:
        headers.append((b"connection", b"close"))
    return headers


async def validate(request: Request) -> Response:
    """``POST /validate`` as a Starlette route."""
    handled = await handle(_services(request), request.scope, request.receive)
    if handled is None:
        return Response(status_code=400)
    status, content = handled
    return Response(
        content,
        status_code=status,
        headers={k.decode(): v.decode() for k, v in _headers(status, content)},
    )


class FastValidate:
    """Pure ASGI middleware answering ``POST /validate``; everything else goes on to FastAPI."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer /validate POSTs; pass everything else on."""
        if scope["type"] != "http" or scope["path"] not in ANSWERS or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        handled = await handle(self.state.services, scope, receive)
        if handled is None:
            return
        status, content = handled
        headers = _headers(status, content)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


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
    Route("/mutate", validate, methods=["POST"]),
    Route("/validate/system", validate, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
