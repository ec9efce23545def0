from node_agent.kernel import netconn
from node_agent.kernel.procfs import ProcFS


def test_ipv4_and_ipv6_addresses_decode_from_kernel_word_order() -> None:
    assert netconn.decode_address("02004D0A") == "10.77.0.2"
    assert netconn.decode_address("0100007F") == "127.0.0.1"
    assert netconn.decode_address("B80D0120000000000000000001000000") == "2001:db8::1"
    assert netconn.decode_address("00000000000000000000000001000000") == "::1"
    assert netconn.decode_address("0000000000000000FFFF00000100007F") == "127.0.0.1"


def test_connections_are_those_whose_inode_the_process_holds(proc: ProcFS) -> None:
    conns = netconn.connections(proc, 100)
    by_inode = {c.inode: c for c in conns}
    assert set(by_inode) == {55923, 55924}
    pool = by_inode[55923]
    assert (pool.remote_address, pool.remote_port, pool.local_port) == ("10.77.0.1", 3333, 41868)
    assert pool.established
    assert pool.remote == "10.77.0.1:3333"


def test_outbound_excludes_listeners_and_connections_to_a_listening_port(proc: ProcFS) -> None:
    out = netconn.outbound(netconn.connections(proc, 100))
    assert [c.inode for c in out] == [55923]


def test_a_table_with_garbage_lines_is_parsed_line_by_line() -> None:
    text = (
        "header\nnot a line\n 0: 0100007F:0050 0100007F:0D05 01 0 0 0 0 0 7\n"
        " 1: zz:zz 00:00 01 0 0 0 0 0 8\n"
    )
    conns = netconn.parse_table(text)
    assert [c.inode for c in conns] == [7]


def test_ipv6_remote_renders_bracketed() -> None:
    text = (
        "h\n 0: 00000000000000000000000001000000:3039 B80D0120000000000000000001000000:386C "
        "01 0 0 0 0 0 9\n"
    )
    (conn,) = netconn.parse_table(text)
    assert conn.remote == "[2001:db8::1]:14444"
