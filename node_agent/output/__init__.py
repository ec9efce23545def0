"""What happens to findings: act on them (``response``), report them and count them.

Without a cluster ``report`` prints them; in a cluster ``clusterreport`` writes a
MinerDetection and an Event for each; ``metrics`` serves the agent's Prometheus metrics.
"""
