"""minerguard: layered cryptominer defence for Kubernetes.

The shared library that the webhook, the node agent and the operator import: the API models
(``minerguard.api``), the signature engine (``minerguard.signatures``), policy semantics
(``minerguard.policy``), pod-spec reading (``minerguard.podspec``) and the Kubernetes helpers
(``minerguard.kube``, the only module that touches the ``kubernetes`` client).
"""

__version__ = "0.1.0"
