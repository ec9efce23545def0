"""Encoded and assembled miners through the real server: decoded, denied, the decoding named."""

from __future__ import annotations

import pytest

from tests.integration.webhook.conftest import ServerFactory
from tests.integration.webhook.reviews import container, pod, review

pytestmark = pytest.mark.slow

MINER = "./x -o pool.supportxmr.com:3333 --donate-level 1 --randomx-mode fast"


def test_a_hex_encoded_miner_is_denied_and_a_hex_encoded_harmless_script_is_not(
    serve: ServerFactory,
) -> None:
    server = serve()
    hidden = f"echo {MINER.encode().hex()} | xxd -r -p | sh"
    denied = server.review(review(pod(container("alpine:3.20", command=["sh", "-c", hidden]))))
    assert denied["allowed"] is False
    assert "command (sh -c, hex)" in denied["status"]["message"]
    harmless = f"echo {b'echo ready; sleep 3600'.hex()} | xxd -r -p | sh"
    allowed = server.review(review(pod(container("alpine:3.20", command=["sh", "-c", harmless]))))
    assert allowed["allowed"] is True


def test_a_miner_assembled_from_fragments_across_args_and_env_is_denied(
    serve: ServerFactory,
) -> None:
    server = serve()
    script = 'p=./sys; q=temd; $p$q -o "pool.$H.com:3333" --dona""te-level 1'
    spec = container(
        "alpine:3.20",
        command=["/bin/sh", "-c"],
        args=[f"H=supp; H=${{H}}ortxmr; {script}"],
    )
    denied = server.review(review(pod(spec)))
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    assert "mining pool host 'pool.supportxmr.com' (in command (sh -c))" in message
