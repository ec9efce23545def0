"""The minerguard node agent: exec events, cgroup and /proc sampling, scoring, response.

Layers, from the kernel up: ``procfs``/``cgroups``/``netconn``/``connector``/``fanotify``/``gpu``
read the OS through injectable roots and turn OS races into ``errors``; ``scoring`` and
``masquerade`` are pure; ``sampler``, ``execwatch`` and ``agent`` tie them together; ``report``
and ``response`` act. Nothing here imports the ``kubernetes`` client: API access goes through
``minerguard.kube``.
"""
