"""Gather the facts of each new MinerDetection and write its ``status.investigation``.

The response comes first and never waits for this: the kopf handler that calls
:meth:`Investigator.submit` is registered after ``enforce`` (kopf runs one object's handlers
in order), it is async, and the gathering runs on the investigator's own threads, so a registry that
hangs holds neither kopf's handler threads nor another detection's response. The pod the
enforcer located is handed over before the response may delete it (:meth:`Investigator.remember`),
so a deleted pod's facts are still known; after a restart the pod is read again, and when it is
gone its owner's pod template stands in for it (said in ``unknowns``).

Registry reads are async (httpx): they run on ONE long-lived event loop owned by the
investigator, on its own thread, because an ``httpx.AsyncClient`` and its pooled connections are
bound to the loop that made them; the gathering threads hand coroutines to it with
:func:`asyncio.run_coroutine_threadsafe` and wait a bounded time.

What it reads, each bounded and counted (``Investigation.cost``): the detection (its final
status: what the response did), the pod, its owner chain, the namespace's CronJobs, pods running
the same digest anywhere (a paginated listing capped at ``max_pods_listed`` and shared by the
detections of a few seconds), the pod's exec-session Events, its entry points and the cluster's
anonymous access, the policy (trusted registries, quarantine), the platform of the pod's node
(an image index is read for it; cached per node), and the image's provenance. A part
that cannot be read is said in ``unknowns``; the pure assembly is
:func:`minerguard_operator.decide.investigation.investigate`. Idempotent: a detection that has
an investigation is never investigated again, and one that was folded into another (deleted)
is not investigated at all. Once written, the summary is also posted as an ``Investigated`` Event
on the detection (Warning unless Complete): ``kubectl describe md`` sorts the status's fields
but prints Events last, whole. Whether a created-by stamp or an exec-session Event is the
webhook's word is the operator's settings (``creator_stamps_trusted``, ``exec_sessions_guarded``),
which the chart sets from the same helpers that render their guards.

The parts: :mod:`.handling` (the worker: wait for the response, gather, decide, write),
:mod:`.cluster` (the API reads, bounded and counted) and :mod:`.registry_loop` (the registry
reads on their own event loop).
"""

from minerguard_operator.investigator.handling import Investigator, NotReady, Outcome

__all__ = ["Investigator", "NotReady", "Outcome"]
