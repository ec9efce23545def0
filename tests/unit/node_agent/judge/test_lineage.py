from node_agent.judge.lineage import Detached, Lineage


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
