"""The agent's detection layers, each turning what ``kernel`` and ``judge`` give into findings.

``execwatch`` judges every new process as it starts, ``sampler`` scores every container's
behaviour over time, ``gating`` decides for the fanotify exec gate whether an exec may run.
"""
