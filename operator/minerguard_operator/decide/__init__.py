"""The operator's decisions: pure functions and small thread-safe structures, no client.

Nothing here imports the ``kubernetes`` client or kopf (import-linter checks that), so all of it
is unit-tested without a cluster. What to do about a detection (:mod:`.planning`), whether a
policy may still act destructively (:mod:`.breaker`), whether a detection repeats an earlier one
(:mod:`.dedup`, keyed by :mod:`.records`), when it expires (:mod:`.retention`), what a background
scan records (:mod:`.scanning`), what the statuses say (:mod:`.statuses`), whether this replica
is the active one (:mod:`.peers`), how changed objects are marked (:mod:`.marks`), what a pod
says about its containers' images (:mod:`.containers`), whether an isolation can be trusted to
hold (:mod:`.isolation`), how long to wait before retrying a failed API call
(:mod:`.backoff`), and which CNI objects block a policy's pool traffic cluster-wide
(:mod:`.network`, from :mod:`.pool_targets` and :mod:`.pool_scope`).
:mod:`minerguard_operator.enforcer` and :mod:`minerguard_operator.keeper` carry the decisions
out against the API.
"""
