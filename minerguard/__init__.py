"""minerguard: layered cryptominer defence for Kubernetes.

The shared library that the webhook, the node agent and the operator import: the API models
(``minerguard.api``), the signature engine (``minerguard.signatures``), pod-spec reading
(``minerguard.podspec``), the one decision (``minerguard.evaluate``) and the Kubernetes helpers
(``minerguard.kube``, the only module that touches the ``kubernetes`` client).

"Policy" names four containers, each in its own module:

- ``minerguard.api.policy.MinerPolicy``: the API object, as users write it and the cluster
  stores it;
- ``minerguard.compiled_policy.CompiledPolicy``: one MinerPolicy validated and compiled for
  the hot path (and read from policy files);
- ``minerguard.policy_book.PolicyBook``: the compiled policies by name, each keeping its last
  good generation, fed by a watch or by kopf;
- ``minerguard.kube.policy_watch.PolicyWatch``: a PolicyBook kept current from the cluster.

The node agent adds its own view: ``node_agent.judge.agent_policy.AgentPolicy`` (one compiled
policy with what the agent derives from it) and ``AgentPolicies`` (those in force).

One home per concept: a bounded cache (``cache``), the API's timestamps (``timestamps``),
image references and digests (``images``), the MinerDetection record (``detections``) and
the manifest reader (``manifests``).
"""

__version__ = "0.1.0"
