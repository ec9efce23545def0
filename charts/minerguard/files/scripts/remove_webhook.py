"""Pre-delete hook: remove minerguard's webhook configurations before their backend goes.

Runs in the minerguard image with the standard library only, as the hook Job's service account.
An uninstall must never leave a webhook (failurePolicy Fail) pointing at a deleted Service, which
would refuse every pod in the cluster.
"""

from __future__ import annotations

import json
import os
import pathlib
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

_SERVICEACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_PATH = "/apis/admissionregistration.k8s.io/v1/"
_KINDS = (
    ("MUTATING_WEBHOOK_CONFIGURATION", "mutatingwebhookconfigurations"),
    ("WEBHOOK_CONFIGURATION", "validatingwebhookconfigurations"),
)
"""The digest-pinning one first (when the chart enabled it), then the validating one."""


def main() -> int:
    """Delete each configuration named in the environment; a missing one is success."""
    status = 0
    for variable, resource in _KINDS:
        name = os.environ.get(variable)
        if name:
            status |= _delete(resource, name)
    return status


def _delete(resource: str, name: str) -> int:
    kind = resource.removesuffix("s")
    account = pathlib.Path(os.environ.get("SERVICEACCOUNT_DIR", _SERVICEACCOUNT))
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    url = f"https://{host}:{port}{_PATH}{resource}/{urllib.parse.quote(name, safe='')}"
    token = (account / "token").read_text().strip()
    context = ssl.create_default_context(cafile=str(account / "ca.crt"))
    request = urllib.request.Request(
        url,
        method="DELETE",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
            json.load(response)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            print(f"{kind} {name} already gone")
            return 0
        print(f"deleting {kind} {name}: HTTP {err.code}: {err.read()!r}")
        return 1
    print(f"{kind} {name} deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
