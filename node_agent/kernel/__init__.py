"""The OS as the agent reads it: /proc, cgroups, mounts, netlink, fanotify, NVML and pidfds.

Every reader takes its root (or its kernel interface) injected, so golden trees stand in for
the host in tests, and turns "the process went away" or "the kernel said no" into
``node_agent.errors``. Nothing here judges what it reads.
"""
