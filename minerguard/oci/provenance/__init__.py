"""Where an image came from, as its registry tells it: the registry side of an investigation.

For a detected container the operator asks: is the image ours (:func:`trusted_by`, against the
policies' ``trustedRegistries``; :mod:`.trust`), what did each build step do (the config's
``history``, with the step that added the miner marked; :mod:`.history`), what do its OCI
labels say (source, revision), and which tags of the repository still deliver that digest
(what would bring it back; :mod:`.tags`). :class:`ProvenanceReader` (:mod:`.reader`) asks the
registry, bounded in time and calls, cached across reads, and never raises for what a
registry does.

A registry's answer is evidence to weigh, not truth: the client checks every body against its
digest, but the ``history`` inside a config is free text its builder (or an attacker) wrote.
It is kept only where well formed and consistent with the manifest's layers; anything else
lowers :class:`~minerguard.api.investigation.Confidence` and is said in ``unknowns``.
"""

from __future__ import annotations

from minerguard.oci.provenance.reader import ProvenanceRead, ProvenanceReader
from minerguard.oci.provenance.trust import trusted_by

__all__ = ["ProvenanceRead", "ProvenanceReader", "trusted_by"]
