"""RFC 3339 timestamps as the API writes them, epoch seconds as the logic counts them."""

from __future__ import annotations

import time

from minerguard.timestamps import format_time, now, parse_time


def test_timestamps_round_trip_and_tolerate_junk() -> None:
    assert format_time(1795417200.0) == "2026-11-23T07:00:00Z"
    assert parse_time(format_time(1795417200.0)) == 1795417200.0
    assert parse_time("2026-11-23T07:00:00+00:00") == 1795417200.0
    assert parse_time("2026-11-23T07:00:00") == 1795417200.0  # no zone: UTC, as the API means
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
    assert parse_time("") is None


def test_now_is_the_current_second_as_the_api_writes_it() -> None:
    before = int(time.time())
    stamp = now()
    assert stamp.endswith("Z")
    assert before <= (parse_time(stamp) or 0) <= time.time()
