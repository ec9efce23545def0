"""Kubernetes access: the only package that imports the ``kubernetes`` client.

Everything else in minerguard talks to the API through these helpers, which turn the client's
exceptions into :mod:`minerguard.kube.errors` so callers can tell "retry later" from "give up".
"""
