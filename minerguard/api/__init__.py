"""The minerguard API (group ``minerguard.io``, version ``v1alpha1``) as pydantic models.

The models are the single source of truth: the CRD YAML in the chart is generated from them by
``python -m minerguard.api.crds`` and a test fails when the two drift apart.
"""
