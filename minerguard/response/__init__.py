"""The operator's decisions, kept free of kopf and of the Kubernetes client.

What to do about a detection (:mod:`planning`), whether a policy may still act destructively
(:mod:`breaker`), whether a detection repeats an earlier one (:mod:`dedup`), when it expires
(:mod:`retention`), what a background scan records (:mod:`scanning`) and what the statuses say
(:mod:`statuses`) are pure functions and small thread-safe structures, unit-tested without a
cluster. :mod:`minerguard.kube.responder` carries them out against the API.
"""
