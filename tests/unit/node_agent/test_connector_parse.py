import struct

from node_agent import connector
from node_agent.events import EventKind

NL = struct.Struct("=IHHII")
CN = struct.Struct("=IIIIHH")
EV = struct.Struct("=IIQ")


def message(what: int, body: bytes, ts: int = 123) -> bytes:
    payload = EV.pack(what, 0, ts) + body
    cn = CN.pack(1, 1, 0, 0, len(payload), 0) + payload
    raw = NL.pack(NL.size + len(cn), 3, 0, 0, 0) + cn
    return raw + b"\0" * (-len(raw) % 4)


def test_fork_exec_and_exit_events_are_decoded_and_thread_forks_are_skipped() -> None:
    data = (
        message(connector.PROC_EVENT_FORK, struct.pack("=4I", 10, 10, 11, 11))
        + message(connector.PROC_EVENT_FORK, struct.pack("=4I", 11, 11, 12, 11))
        + message(connector.PROC_EVENT_EXEC, struct.pack("=2I", 11, 11), ts=456)
        + message(connector.PROC_EVENT_EXIT, struct.pack("=4I", 11, 11, 7 << 8, 17))
        + message(0x4, struct.pack("=4I", 1, 1, 0, 0))
    )
    events, skipped = connector.parse_messages(data)
    assert [(e.kind, e.pid) for e in events] == [
        (EventKind.FORK, 11),
        (EventKind.EXEC, 11),
        (EventKind.EXIT, 11),
    ]
    assert events[0].parent == 10
    assert events[1].timestamp_ns == 456
    assert events[2].exit_code == 7 << 8
    assert skipped == 1


def test_a_truncated_datagram_yields_what_is_complete() -> None:
    data = message(connector.PROC_EVENT_EXEC, struct.pack("=2I", 5, 5))
    events, _ = connector.parse_messages(data + data[:20])
    assert len(events) == 1
