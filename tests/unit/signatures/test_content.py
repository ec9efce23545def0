"""The content scanner: miner strings in a file's bytes, across chunk boundaries, bounded."""

from collections.abc import Callable
from pathlib import Path

from minerguard.signatures import content
from minerguard.signatures.bundle import Entry, Kind


def reader(data: bytes, calls: list[int] | None = None) -> Callable[[int, int], bytes]:
    def read(offset: int, size: int) -> bytes:
        if calls is not None:
            calls.append(offset)
        return data[offset : offset + size]

    return read


def ids(verdict: content.ContentVerdict) -> set[str]:
    return {e.id for e in verdict.hits}


def test_a_miner_s_strings_are_found_and_weighed_up_to_the_cap() -> None:
    data = b"\x7fELF" + b"\0" * 5000 + b"stratum+tcp://%s\0mining.subscribe\0randomx\0"
    verdict = content.builtin_scanner().scan(reader(data))
    assert ids(verdict) == {
        "content/stratum-tcp-scheme",
        "content/stratum-mining-subscribe",
        "content/algorithm-randomx",
    }
    assert verdict.score == 1.0
    assert "'stratum+tcp://'" in verdict.describe()


def test_algorithm_names_alone_stay_below_the_threshold() -> None:
    verdict = content.builtin_scanner().scan(reader(b"randomx cryptonight kawpow"))
    assert verdict.score == 0.75


def test_a_string_across_a_chunk_boundary_is_found() -> None:
    needle = b"mining.authorize"
    data = b"x" * (content.CHUNK - 5) + needle + b"y" * 100
    assert ids(content.builtin_scanner().scan(reader(data))) == {"content/stratum-mining-authorize"}


def test_only_the_first_limit_bytes_are_read() -> None:
    data = b"\0" * (3 * content.CHUNK) + b"stratum+tcp://"
    calls: list[int] = []
    verdict = content.builtin_scanner().scan(reader(data, calls), limit=2 * content.CHUNK)
    assert verdict.hits == ()
    assert calls == [0, content.CHUNK]


def test_scanning_stops_once_every_entry_was_seen() -> None:
    entry = Entry(id="c", kind=Kind.CONTENT, value="needle", weight=0.5, source="test")
    scanner = content.ContentScanner([entry])
    calls: list[int] = []
    data = b"needle" + b"\0" * (4 * content.CHUNK)
    assert ids(scanner.scan(reader(data, calls))) == {"c"}
    assert calls == [0]


def test_a_benign_binary_carries_none_of_them() -> None:
    data = Path("/bin/sh").read_bytes()
    assert content.builtin_scanner().scan(reader(data)).hits == ()
