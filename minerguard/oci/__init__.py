"""Reading images from OCI registries: the client, credentials and the address policy.

Shared by the webhook (what a container will run) and the operator (where a detected image
came from), so both read registries with the same size caps, digest checks, credential scoping
and SSRF rules.
"""
