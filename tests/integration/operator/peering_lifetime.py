"""A kopf handler module that ``kopf run`` imports after the operator's in test_peering.

It shortens kopf's peering lifetime (``settings.peering.lifetime``, 60 s by default, which the
operator leaves as it is) to ``PEERING_LIFETIME`` seconds, so a replica killed without a clean
exit is seen as dead within seconds. It registers into the operator's registry, which
``minerguard_operator.handlers`` makes kopf's default; nothing else of the operator changes.
"""

from __future__ import annotations

import os
from typing import Any

import kopf


@kopf.on.startup()
def short_peering_lifetime(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.lifetime = int(os.environ["PEERING_LIFETIME"])
