"""API discovery: which resources a group version is served with, asked the way kubectl asks.

A CRD can be installed (a CNI added) or removed at any time, so callers ask again rather than
remember: one GET per group version, answered from the API server's discovery cache.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubernetes import client

from minerguard.kube import errors, resources


def served(api: client.ApiClient, group_version: str) -> frozenset[str]:
    """Plural resource names served under ``group/version`` (``v1`` for the core group).

    Empty when the group version is not served at all (404) or discovery is refused (403):
    either way nothing of it may be used.

    Raises:
        errors.ApiError: any other failure (retryable ones included), so that a passing outage
            is not mistaken for "not served" and objects are not taken down for it.
    """
    url = ("/api/" if "/" not in group_version else "/apis/") + group_version
    try:
        listed = resources.read_json(resources.request(api, "GET", url))
    except (errors.NotFound, errors.Forbidden):
        return frozenset()
    return frozenset(
        str(r["name"])
        for r in listed.get("resources") or ()
        if isinstance(r, Mapping) and isinstance(r.get("name"), str)
    )
