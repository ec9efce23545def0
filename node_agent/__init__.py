"""The minerguard node agent: exec events, cgroup and /proc sampling, scoring, response.

The subpackages read in the order data flows, and each imports only those before it (an
import-linter ``layers`` contract in pyproject.toml holds them to it):

- ``kernel``: read the OS through injectable roots (/proc, cgroupfs, overlay mounts, the proc
  connector, fanotify, NVML, pidfd kills) and turn OS races into ``errors``;
- ``judge``: what a process is and how bad it looks: its snapshot, masquerade and content
  evidence, the behaviour score, lineage, pool addresses, the pods and policies it falls under;
- ``layers``: the agent's detection layers: ``execwatch`` (every new process), ``sampler``
  (behaviour over time) and ``gating`` (the fanotify exec gate's decisions), each making
  ``Finding``s;
- ``output``: act on findings and report them (kill, print, MinerDetections and Events,
  metrics).

At the top, ``agent`` runs the loop, ``wiring`` assembles it from ``settings``, ``cli`` and
``incluster`` start it. Below everything: ``records`` (the records the layers hand each other),
``errors`` and ``counters``; the caches are ``minerguard.cache``'s. Nothing here imports the
``kubernetes`` client: API access goes through ``minerguard.kube``.
"""
