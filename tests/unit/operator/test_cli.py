"""``minerguard operator``'s flags become settings, and the settings kopf's arguments."""

from __future__ import annotations

from minerguard_operator import cli, handlers


def test_flags_become_settings() -> None:
    settings = cli.parse_args(
        [
            "-n",
            "apps",
            "-n",
            "web",
            "--peering",
            "mg",
            "--priority",
            "100",
            "--kube-server",
            "http://x",
            "--metrics-port",
            "9",
        ]
    )
    assert settings.namespaces == ["apps", "web"]
    assert (settings.peering_name, settings.priority, settings.metrics_port) == ("mg", 100, 9)
    kwargs = cli.operator_kwargs(handlers.build_runtime(settings))
    assert kwargs["registry"] is handlers.registry
    assert kwargs["standalone"] is False
    assert kwargs["clusterwide"] is False
    assert kwargs["peering_name"] == "mg"
    assert cli.parse_args(["--all-namespaces", "--standalone"]).namespaces == []
