"""What a process or container is, and how much it looks like a miner.

A process's snapshot (argv, executable, environment, config files, content), the pure checks
and scores over it and over cgroup samples, and what judging needs to know besides: lineage,
pool addresses, the pod a cgroup belongs to and the policies that apply to it.
"""
