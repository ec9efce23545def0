"""minerguard's operator, as an installed package of its own name.

It lives in the top-level ``operator/`` folder but is not called ``operator``: the standard
library's ``operator`` module is loaded at interpreter start, so a package of that name could
never be imported. ``minerguard operator`` and ``kopf run -m minerguard_operator.handlers`` both
import it by name, from a checkout and from the wheel or image alike.

Read in the order a detection flows:

- :mod:`.handlers`: the kopf registry and handlers, thin calls into one :class:`.runtime.Runtime`
- :mod:`.cli`: ``minerguard operator``'s flags, :func:`~.cli.main` and :func:`~.cli.operate`
- :mod:`.settings`: :class:`~.settings.OperatorSettings` (``MINERGUARD_OPERATOR_*``)
- :mod:`.runtime`: settings, state and the two workers wired together; peering
- :mod:`.enforcer`: a MinerDetection's response (dedup, plan, rate limit, act, record)
- :mod:`.actions`: the table of runtime actions and their handlers
- :mod:`.changes`: the idempotent, marked changes to workloads that the handlers make
- :mod:`.owners`: the controllers above a pod
- :mod:`.keeper`: MinerPolicy status, detection expiry, background scans
- :mod:`.state`, :mod:`.metrics`, :mod:`.events`: what the workers share
- :mod:`.decide`: the pure decisions (no client, no kopf), unit-tested without a cluster
"""
