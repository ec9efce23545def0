"""Flags over environment, and the errors a person sees for bad flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook import cli
from webhook.settings import WebhookSettings


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINERGUARD_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("MINERGUARD_WEBHOOK_ADMISSION_TIMEOUT_SECONDS", "5")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = cli.settings_from(
        [
            "--tls-cert=/c",
            "--tls-key=/k",
            "--port=8443",
            "--insecure-registry=Reg.Local:5000",
            "--insecure-registry=10.0.0.1:5000",
            "--policy-file=/p1.yaml",
            "--workers=2",
        ]
    )
    assert settings.port == 8443
    assert settings.admission_timeout_seconds == 5
    assert settings.insecure_registries == ("reg.local:5000", "10.0.0.1:5000")
    assert settings.policy_files == (Path("/p1.yaml"),)
    assert settings.workers == 2
    assert settings.in_cluster is False


def test_the_review_budget_stays_inside_the_api_servers_timeout() -> None:
    settings = WebhookSettings(admission_timeout_seconds=10, registry_timeout=30)
    assert settings.deadline == 9
    assert settings.resolve_deadline < settings.deadline
    assert WebhookSettings(admission_timeout_seconds=1).deadline == 0.75


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tls-key=/k"], "--tls-cert and --tls-key are required"),
        (["--tls-cert=/c", "--tls-key=/k", "--workers=0"], "workers"),
        (["--tls-cert=/c", "--tls-key=/k", "--port=70000"], "port"),
    ],
)
def test_bad_flags_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.settings_from(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_files_and_broken_policies_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--tls-cert", str(tmp_path / "none"), "--tls-key", str(tmp_path / "k")]) == 2
    assert "no such file" in capsys.readouterr().err
    cert, key, broken = tmp_path / "c", tmp_path / "k", tmp_path / "p.yaml"
    cert.write_text("x")
    key.write_text("x")
    broken.write_text("kind: MinerPolicy\nspec: {mode: Sometimes}\n")
    code = cli.main(["--tls-cert", str(cert), "--tls-key", str(key), "--policy-file", str(broken)])
    assert code == 2
    assert "mode" in capsys.readouterr().err
