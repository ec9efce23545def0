import struct

from node_agent.kernel import connector
from node_agent.kernel.events import EventKind

NL = struct.Struct("=IHHII")
CN = struct.Struct("=IIIIHH")
EV = struct.Struct("=IIQ")


def message(what: int, body: bytes, ts: int = 123) -> bytes:
    """One message as the kernel sends it: the proc_event union is always 24 bytes."""
    payload = EV.pack(what, 0, ts) + body.ljust(24, b"\0")
    cn = CN.pack(1, 1, 0, 0, len(payload), 0) + payload
    raw = NL.pack(NL.size + len(cn), 3, 0, 0, 0) + cn
    return raw.ljust(connector.SLOT_SIZE, b"\0")  # as recvmmsg leaves it in its slot


def test_fork_exec_and_exit_events_are_decoded_and_thread_forks_are_skipped() -> None:
    data = (
        message(connector.PROC_EVENT_FORK, struct.pack("=4I", 10, 10, 11, 11))
        + message(connector.PROC_EVENT_FORK, struct.pack("=4I", 11, 11, 12, 11))
        + message(connector.PROC_EVENT_EXEC, struct.pack("=2I", 11, 11), ts=456)
        + message(connector.PROC_EVENT_EXIT, struct.pack("=4I", 11, 11, 7 << 8, 17))
        + message(0x4, struct.pack("=4I", 1, 1, 0, 0))
    )
    events, skipped = connector.decode(data)
    assert [(e.kind, e.pid) for e in events] == [
        (EventKind.FORK, 11),
        (EventKind.EXEC, 11),
        (EventKind.EXIT, 11),
    ]
    assert events[0].parent == 10
    assert events[1].timestamp_ns == 456
    assert events[2].exit_code == 7 << 8
    assert skipped == 1


def test_a_slot_shorter_than_a_proc_event_is_skipped() -> None:
    whole = message(connector.PROC_EVENT_EXEC, struct.pack("=2I", 5, 5))
    short = NL.pack(NL.size + CN.size, 3, 0, 0, 0).ljust(connector.SLOT_SIZE, b"\xff")
    events, _ = connector.decode(short + whole)
    assert [e.pid for e in events] == [5]
