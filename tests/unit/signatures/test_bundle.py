import pytest

from minerguard.errors import BundleError
from minerguard.signatures import bundle, engine
from minerguard.signatures.bundle import Kind


def test_the_builtin_bundle_loads_with_provenance_for_every_entry() -> None:
    loaded = bundle.builtin()
    assert loaded.version
    assert len(loaded.signatures) > 100
    assert all(e.source.strip() for e in loaded.signatures)
    assert {e.kind for e in loaded.signatures} >= {
        Kind.BINARY,
        Kind.OPTION,
        Kind.POOL_HOST,
        Kind.POOL_PORT,
        Kind.URL_SCHEME,
        Kind.WALLET,
        Kind.IMAGE,
    }


def test_no_builtin_entry_alone_reaches_the_threshold_unless_it_is_deciding() -> None:
    deciding = {Kind.URL_SCHEME, Kind.IMAGE, Kind.ARGUMENT}
    for entry in bundle.builtin().signatures:
        if entry.kind not in deciding:
            assert entry.weight < engine.THRESHOLD, entry.id


def test_the_builtin_bundle_compiles() -> None:
    compiled = engine.compile_entries(bundle.builtin().signatures)
    assert len(compiled.entries) == len(bundle.builtin().signatures)


def test_duplicate_ids_are_refused() -> None:
    text = """
version: "1"
signatures:
  - {id: a, kind: binary, value: x, weight: 0.5, source: s}
  - {id: a, kind: binary, value: y, weight: 0.5, source: s}
"""
    with pytest.raises(BundleError, match="duplicate signature id 'a'"):
        bundle.parse(text, "test.yaml")
