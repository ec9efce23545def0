from node_agent.judge.lineage import COMMAND_LIMIT, Detached, Lineage


def test_a_child_whose_parent_exits_is_detached_from_it() -> None:
    lineage = Lineage()
    lineage.fork(child=11, parent=10)
    assert lineage.detached(11) is None
    lineage.exit(10)
    assert lineage.detached(11) == Detached(pid=11, parent=10)


def test_a_changed_ppid_reveals_an_orphan_without_fork_events() -> None:
    lineage = Lineage()
    lineage.observe(21, 20)
    lineage.observe(21, 20)
    assert lineage.detached(21) is None
    lineage.observe(21, 1)
    assert lineage.detached(21) == Detached(pid=21, parent=20), "the parent before reparenting"


def test_exited_processes_are_forgotten_and_memory_is_bounded() -> None:
    lineage = Lineage(capacity=100)
    for pid in range(1000, 1300):
        lineage.fork(pid, 1)
    assert len(lineage) == 100
    assert lineage.evicted == 200
    lineage.exit(1299)
    assert len(lineage) == 99


def test_an_exit_that_leaves_nothing_running_is_forgotten_at_once() -> None:
    lineage = Lineage()
    lineage.fork(child=11, parent=10, at_ns=1)
    lineage.exit(11, at_ns=2)
    assert (len(lineage), lineage.exited_count) == (0, 0)


def test_an_exit_that_leaves_a_child_running_is_remembered_for_it() -> None:
    lineage = Lineage()
    lineage.fork(child=11, parent=10, at_ns=1)
    lineage.seen(11, container="pod/c", start_ticks=5, command_line="sh -c " + "x" * 2000)
    lineage.fork(child=12, parent=11, at_ns=3)
    lineage.exit(11, at_ns=4)
    child = lineage.record(12)
    assert child is not None
    shell = lineage.parent_of(child)
    assert shell is not None
    assert (shell.pid, shell.exited_ns, shell.start_ticks, shell.container) == (11, 4, 5, "pod/c")
    assert shell.command_line is not None
    assert len(shell.command_line) == COMMAND_LIMIT


def test_exited_ancestors_are_let_go_once_their_last_descendant_exits() -> None:
    lineage = Lineage()
    lineage.fork(child=11, parent=10, at_ns=1)
    lineage.fork(child=12, parent=11, at_ns=2)
    lineage.fork(child=13, parent=12, at_ns=3)
    lineage.exit(11, at_ns=4)
    lineage.exit(12, at_ns=5)
    assert lineage.exited_count == 2
    lineage.exit(13, at_ns=6)
    assert lineage.exited_count == 0


def test_a_reused_pid_gets_a_new_record_and_the_exited_one_stays_for_its_orphan() -> None:
    lineage = Lineage()
    lineage.fork(child=11, parent=10, at_ns=1)
    lineage.fork(child=12, parent=11, at_ns=2)
    lineage.exit(11, at_ns=3)
    lineage.fork(child=11, parent=10, at_ns=4)  # pid 11 again
    child = lineage.record(12)
    assert child is not None
    original = lineage.parent_of(child)
    assert original is not None
    assert original.exited_ns == 3
    assert original is not lineage.record(11)


def test_a_fork_and_exit_worm_is_bounded_by_the_exited_capacity() -> None:
    lineage = Lineage(exited_capacity=64)
    lineage.fork(child=100, parent=1, at_ns=0)
    for pid in range(100, 5100):  # each generation forks the next and exits
        lineage.fork(child=pid + 1, parent=pid, at_ns=pid)
        lineage.exit(pid, at_ns=pid)
    assert lineage.exited_count == 64
    assert lineage.exited_evicted == 5000 - 64
