"""The error hierarchy of minerguard.

Every foreign boundary (the Kubernetes API, registries, the kernel, user input) raises one of
these, always chained with ``raise ... from err``, so callers can tell a broken policy from an
unreachable API server without string matching.
"""


class MinerguardError(Exception):
    """Base of every error minerguard raises on purpose."""


class PolicyError(MinerguardError):
    """A MinerPolicy (or a policy file) is invalid; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BundleError(MinerguardError):
    """The signature bundle is malformed."""


class InputError(MinerguardError):
    """A manifest or document cannot be read; the message names file and document."""


class UnsupportedObjectError(MinerguardError):
    """An object is not a Pod or a workload that embeds a pod template."""
