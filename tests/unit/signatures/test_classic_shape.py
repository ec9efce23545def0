"""The classic shape: ``-o host:port -u <wallet>``, whatever the binary is called.

Campaigns (TeamTNT, Kinsing, WatchDog, 8220) rename their xmrig build and point it at a bare
IP address, so neither the binary's name nor a pool's domain is there to see. What is always
there is the shape of the command line and a wallet that must be real to be paid. With a
checksum-valid wallet the shape is conclusive; with a wallet-shaped token whose checksum
fails it is not.
"""

import pytest

from minerguard.signatures import bundle, engine
from minerguard.signatures.engine import Subject

XMR = (
    "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNg"
    "YeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge"
)
"""docs.getmonero.org's standard address example."""
XMR_TWIN = XMR.replace("TRj5", "TRJ5")
"""The same with one character's case changed, as copied by hand: the checksum fails."""
ETH = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
RVN = "RXissueAssetXXXXXXXXXXXXXXXXXhhZGt"
DERO = "dero1qy2lgwd6px5d5jheyumav7dd2nmdwwlae8pmnu27jpezekyyk62mgqqjyazs8"
"""dero-am/astrobwt-miner's example wallet."""


@pytest.fixture(scope="module")
def builtin() -> engine.Engine:
    return engine.compile_entries(bundle.builtin().signatures)


def verdict(eng: engine.Engine, *argv: str) -> engine.Verdict:
    return eng.evaluate(Subject(argv=argv))


@pytest.mark.parametrize(
    "argv",
    [
        ("/var/tmp/.x/ld-linux", "-o", "45.9.148.35:80", "-u", XMR, "-p", "x"),
        ("./bioset", "-O", "194.38.20.31:443", "-u", XMR, "-k"),
        ("/usr/bin/php-fpm", "--url=185.122.204.197:9999", f"--user={XMR}"),
        ("./app", "--url", "91.215.169.111:3333", "--user", XMR),
        ("./gpu", "-o", "10.11.12.13:4444", "-u", f"{ETH}.rig0"),
        ("./runner", "--pool", "198.51.100.7:5555", "-u", RVN),
        ("/pause", "-d", "community-pools.mysrv.cloud:10300", "-w", DERO, "-m", "4"),
        ("./k8s-worker", "--daemon-rpc-address=dero-node.example.net:10102", f"-w={DERO}"),
        ("./astro", "-w", DERO, "-r", "203.0.113.5:10300", "-p", "rpc"),
    ],
    ids=[
        "o-ip-port",
        "capital-O",
        "url-equals",
        "url-space",
        "eth-worker",
        "pool-rvn",
        "dero-miner-d",
        "dero-miner-long",
        "astrominer-r",
    ],
)
def test_the_classic_shape_with_a_valid_wallet_is_denied_whatever_the_binary(
    builtin: engine.Engine, argv: tuple[str, ...]
) -> None:
    found = verdict(builtin, *argv)
    assert found.matched, found.signals
    assert "rule/classic-shape" in {s.name for s in found.signals}


def test_the_classic_shape_inside_a_shell_script_is_denied(builtin: engine.Engine) -> None:
    script = f"cd /tmp && chmod +x dbus && nohup ./dbus -o 45.9.148.35:80 -u {XMR} >/dev/null &"
    assert verdict(builtin, "sh", "-c", script).matched


def test_the_shape_with_a_wallet_whose_checksum_fails_is_not_conclusive(
    builtin: engine.Engine,
) -> None:
    found = verdict(builtin, "./app", "-o", "45.9.148.35:80", "-u", XMR_TWIN)
    assert not found.matched
    assert "wallet-shaped" in {s.name for s in found.signals}


@pytest.mark.parametrize(
    "argv",
    [
        ("gcc", "-o", "main.o", "-c", "main.c"),
        ("ssh", "-o", "ProxyJump=bastion:22", "db"),
        ("curl", "-o", "out.json", "http://10.0.0.1:8080/api"),
        ("haproxy", "-o", "10.0.0.5:8443"),
        ("echo", XMR),
    ],
)
def test_half_of_the_shape_is_not_a_miner(builtin: engine.Engine, argv: tuple[str, ...]) -> None:
    assert not verdict(builtin, *argv).matched


def test_a_kernel_thread_name_run_from_a_writable_path_adds_weight(builtin: engine.Engine) -> None:
    plain = verdict(builtin, "./worker", "-o", "45.9.148.35:80", "-u", XMR_TWIN)
    hidden = verdict(builtin, "/tmp/.ICE-unix/kswapd0", "-o", "45.9.148.35:80", "-u", XMR_TWIN)
    assert hidden.score > plain.score
    assert "masquerade" in {s.name for s in hidden.signals}


@pytest.mark.parametrize(
    "path",
    [
        "/tmp/kworker",
        "/dev/shm/kswapd0",
        "/var/tmp/.cache/kthreadd",
        "/home/app/.local/systemd-journald",
        "/tmp/.X11-unix/sshd",
        "/tmp/[kworker/0:1]",
        "/dev/shm/dbus-daemon",
        "/usr/sbin/bioset",
        "/usr/local/bin/kswapd0",
        "/var/tmp/.x/kubelet",
    ],
)
def test_masquerading_names_in_writable_places_are_seen(builtin: engine.Engine, path: str) -> None:
    found = verdict(builtin, path, "--config", "c.json")
    assert "masquerade" in {s.name for s in found.signals}
    assert not found.matched  # alone it is a hint, not a miner


@pytest.mark.parametrize(
    "argv",
    [
        ("/usr/sbin/sshd", "-D"),
        ("/lib/systemd/systemd-journald",),
        ("/usr/bin/dbus-daemon", "--system"),
        ("/tmp/build/run-tests.sh",),
        ("/app/migration", "up"),
        ("/usr/bin/kubelet", "--config", "/var/lib/kubelet/config.yaml"),
        ("/usr/sbin/watchdog", "-F"),
    ],
)
def test_system_daemons_where_they_belong_are_not_masquerades(
    builtin: engine.Engine, argv: tuple[str, ...]
) -> None:
    assert "masquerade" not in {s.name for s in verdict(builtin, *argv).signals}


def test_a_known_miner_name_in_a_disguise_is_denied(builtin: engine.Engine) -> None:
    """The name is known (a miner's or a campaign's) and it runs from /tmp as a kernel thread."""
    assert verdict(builtin, "/tmp/kdevtmpfsi").matched
    assert not verdict(builtin, "kdevtmpfsi").matched  # the name alone is one signal


def test_a_valid_wallet_with_a_pool_port_is_the_shape_without_its_options(
    builtin: engine.Engine,
) -> None:
    env = (("MINING_ADDRESS", DERO), ("DAEMON", "community-pools.mysrv.cloud:10300"))
    assert builtin.evaluate(Subject(argv=("/app/api",), env=env)).matched
    twin = DERO[:-3] + "qqq"
    env = (("MINING_ADDRESS", twin), ("DAEMON", "community-pools.mysrv.cloud:10300"))
    assert not builtin.evaluate(Subject(argv=("/app/api",), env=env)).matched
