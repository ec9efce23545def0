"""`helm test`: call the webhook the way the API server does and check its verdicts.

Verifies the serving certificate against the CA for the Service's DNS name, checks /readyz, and
posts two dry-run AdmissionReviews (no MinerDetection is written): a benign pod must be allowed,
and a miner pod denied (EXPECT=deny), allowed with warnings (EXPECT=warn), or answered (EXPECT=any).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
import uuid
from typing import Any


def _review(name: str, container: dict[str, Any]) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [container]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": name,
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:minerguard:helm-test"},
            "object": pod,
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def _post(url: str, context: ssl.SSLContext, review: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - https only
        f"{url}/validate",
        data=json.dumps(review).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=context, timeout=15) as response:  # noqa: S310
        answer: dict[str, Any] = json.load(response)
    verdict: dict[str, Any] = answer["response"]
    if verdict.get("uid") != review["request"]["uid"]:
        raise SystemExit(f"the webhook did not echo the request uid: {verdict!r}")
    return verdict


def main() -> int:
    """Run the checks; print what was seen and exit non-zero on the first failure."""
    url = os.environ["WEBHOOK_URL"].rstrip("/")
    if not url.startswith("https://"):
        raise SystemExit(f"WEBHOOK_URL must be https: {url}")
    expect = os.environ.get("EXPECT", "any")
    context = ssl.create_default_context(cafile=os.environ["CA_FILE"])
    with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=15) as response:  # noqa: S310
        print(f"/readyz: HTTP {response.status}")

    benign = _post(
        url, context, _review("helm-test-benign", {"name": "web", "image": "nginx:1.27"})
    )
    print(f"benign pod: allowed={benign.get('allowed')}")
    if benign.get("allowed") is not True:
        raise SystemExit(f"a benign pod was refused: {benign!r}")

    miner_container = {
        "name": "miner",
        "image": "busybox:1.36",
        "command": ["xmrig"],
        "args": ["-o", "stratum+tcp://pool.minexmr.com:4444", "--donate-level=1"],
    }
    miner = _post(url, context, _review("helm-test-miner", miner_container))
    message = (miner.get("status") or {}).get("message", "")
    print(f"miner pod: allowed={miner.get('allowed')} message={message!r}")
    if expect == "deny" and (miner.get("allowed") is not False or not message):
        raise SystemExit(f"a miner pod was not refused with a message: {miner!r}")
    if expect == "warn" and (miner.get("allowed") is not True or not miner.get("warnings")):
        raise SystemExit(f"a miner pod was not allowed with warnings: {miner!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
