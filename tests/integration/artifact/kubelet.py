"""What a kubelet and containerd hand runc for one of the chart's containers, and runc running it.

The pod spec comes from the chart rendered with Helm's engine and its default values, so the
image runs with exactly the chart's securityContext: user and groups, ``drop: [ALL]`` plus the
named capabilities, ``allowPrivilegeEscalation: false`` (no_new_privs), a read-only root
filesystem, ``hostPID``/``hostNetwork``, emptyDir (tmpfs), hostPath (bind) and secret (a
read-only bind of a folder holding the keys) volumes, and the memory and CPU limits. The
starting point is umoci's runtime spec for the image (the image's user, environment and working
folder, the runtime's default mounts and masked paths), as containerd starts from the image.

Where this departs from a node, and why:

- The webhook and the operator share the host's network namespace (a pod would have its own),
  so the test reaches them, and they reach the emulator, on loopback.
- seccomp ``RuntimeDefault`` is not applied: the profile is built into containerd and is not a
  file here. (The chart sets no AppArmor profile by default.)
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.artifact.build import Image
from tests.integration.chart import chart
from tests.integration.node_agent.conftest import remove_runtime_cgroups

# containerd's default capabilities (what a container gets before add/drop).
DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)  # fmt: skip
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
CPU_PERIOD = 100_000


@dataclass(frozen=True)
class Workload:
    """One container of one of the chart's pod templates, as rendered with default values."""

    name: str
    pod: Mapping[str, Any]
    container: Mapping[str, Any]

    @classmethod
    def from_chart(cls, kind: str, component: str) -> Workload:
        obj = chart.render().one(kind, f"-{component}")
        pod = obj["spec"]["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == component]
        return cls(name=f"{obj['metadata']['name']}-0", pod=pod, container=container)

    @property
    def security(self) -> Mapping[str, Any]:
        return dict(self.container.get("securityContext") or {})

    def pod_field(self, path: str) -> str:
        """What the downward API gives ``fieldRef.fieldPath``."""
        return {
            "metadata.name": self.name,
            "metadata.namespace": chart.NAMESPACE,
            "spec.nodeName": "node-1",
            # The containers share this host's network, as hostNetwork pods share the node's:
            # the node's own address here is loopback.
            "status.podIP": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
        }[path]


def _quantity(text: str) -> float:
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def runtime_spec(
    image: Image,
    workload: Workload,
    *,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    volumes: Mapping[str, Path] | None = None,
    cgroups_path: str,
    host_network: bool = False,
) -> dict[str, Any]:
    """The OCI runtime spec for ``workload`` in ``image``.

    ``volumes`` maps secret volume names to folders holding their keys; ``env`` is laid over the
    chart's variables (a test moves ports off fixed numbers); ``extra_args`` follow the chart's.
    """
    spec = copy.deepcopy(image.runtime)
    pod, container, security = workload.pod, workload.container, workload.security
    pod_security = dict(pod.get("securityContext") or {})
    process = spec["process"]
    process["terminal"] = False
    if container.get("command"):  # the image's Cmd goes with its Entrypoint
        argv = [*container["command"], *(container.get("args") or [])]
    else:
        argv = [*image.entrypoint, *(container.get("args") or image.config.get("Cmd") or [])]
    process["args"] = [*argv, *extra_args]
    variables = {k: v for k, _, v in (item.partition("=") for item in process["env"])}
    for item in container.get("env") or []:
        if "value" in item:
            variables[item["name"]] = str(item["value"])
        else:
            variables[item["name"]] = workload.pod_field(item["valueFrom"]["fieldRef"]["fieldPath"])
    variables.update(env or {})
    process["env"] = [f"{k}={v}" for k, v in variables.items()]

    user = process["user"]
    for key, field in (("uid", "runAsUser"), ("gid", "runAsGroup")):
        chosen = security.get(field, pod_security.get(field))
        if chosen is not None:
            user[key] = int(chosen)
    if "fsGroup" in pod_security:
        user["additionalGids"] = [int(pod_security["fsGroup"])]
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) and user["uid"] == 0:
        raise AssertionError(f"{workload.name}: runAsNonRoot with uid 0: the kubelet refuses it")
    assert not security.get("privileged"), "privileged containers are not the chart's"

    capabilities = dict(security.get("capabilities") or {})
    dropped = {c.upper() for c in capabilities.get("drop") or []}
    granted = [] if "ALL" in dropped else [c for c in DEFAULT_CAPABILITIES if c not in dropped]
    granted += [c.upper() for c in capabilities.get("add") or [] if c.upper() not in granted]
    names = [f"CAP_{c}" for c in granted]
    process["capabilities"] = {
        "bounding": names,
        "effective": names,
        "permitted": names,
        "inheritable": [],
        "ambient": [],
    }
    process["noNewPrivileges"] = not security.get("allowPrivilegeEscalation", True)

    spec["root"] = {
        "path": str(image.rootfs),
        "readonly": bool(security.get("readOnlyRootFilesystem")),
    }
    spec["hostname"] = workload.name
    spec["mounts"] = [*spec["mounts"], *_volume_mounts(workload, volumes or {})]

    linux = spec["linux"]
    shared = {"pid"} if pod.get("hostPID") else set()
    if pod.get("hostNetwork") or host_network:
        shared.add("network")
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] not in shared]
    linux["cgroupsPath"] = cgroups_path
    limits = dict((container.get("resources") or {}).get("limits") or {})
    resources: dict[str, Any] = dict(linux.get("resources") or {})
    if "memory" in limits:
        resources["memory"] = {"limit": int(_quantity(str(limits["memory"])))}
    if "cpu" in limits:
        quota = int(_quantity(str(limits["cpu"])) * CPU_PERIOD)
        resources["cpu"] = {"quota": quota, "period": CPU_PERIOD}
    linux["resources"] = resources
    return spec


def image_spec(image: Image, args: Sequence[str], *, cgroups_path: str) -> dict[str, Any]:
    """The image as ``docker run IMAGE ARGS...`` runs it: its own user, the runtime's defaults.

    The root filesystem is mounted read-only all the same: every container shares one unpacked
    copy of it.
    """
    spec = copy.deepcopy(image.runtime)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(args)
    spec["root"] = {"path": str(image.rootfs), "readonly": True}
    spec["linux"]["cgroupsPath"] = cgroups_path
    return spec


@dataclass(frozen=True)
class Confinement:
    """What the kernel says about a running process's privileges."""

    uid: int
    gid: int
    effective_capabilities: int
    bounding_capabilities: int
    no_new_privileges: bool
    read_only_root: bool

    @classmethod
    def of(cls, pid: int) -> Confinement:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        root = next(
            line.split()
            for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
            if line.split()[4] == "/"
        )
        return cls(
            uid=int(status["Uid"].split()[1]),  # effective
            gid=int(status["Gid"].split()[1]),
            effective_capabilities=int(status["CapEff"], 16),
            bounding_capabilities=int(status["CapBnd"], 16),
            no_new_privileges=status["NoNewPrivs"].strip() == "1",
            read_only_root="ro" in root[5].split(","),
        )


# Linux capabilities by bit number (linux/capability.h), as /proc/PID/status masks them.
CAPABILITY_BITS = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip


def capability_mask(*names: str) -> int:
    """The mask /proc/PID/status shows for these capabilities (``KILL``, not ``CAP_KILL``)."""
    return sum(1 << CAPABILITY_BITS.index(name.upper()) for name in set(names))


def _volume_mounts(workload: Workload, secrets: Mapping[str, Path]) -> list[dict[str, Any]]:
    volumes = {v["name"]: v for v in workload.pod.get("volumes") or []}
    mounts: list[dict[str, Any]] = []
    for mount in workload.container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        read_only = ["ro"] if mount.get("readOnly") else []
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit")
            options = ["nosuid", "nodev", "mode=1777"]
            if size:
                options.append(f"size={int(_quantity(str(size)))}")
            mounts.append({"destination": mount["mountPath"], "type": "tmpfs",
                           "source": "tmpfs", "options": options})  # fmt: skip
        elif "hostPath" in volume:
            mounts.append({"destination": mount["mountPath"], "type": "bind",
                           "source": volume["hostPath"]["path"],
                           "options": ["rbind", "rprivate", *read_only]})  # fmt: skip
        elif "secret" in volume:
            mounts.append({"destination": mount["mountPath"], "type": "bind",
                           "source": str(secrets[mount["name"]]),
                           "options": ["rbind", "rprivate", "ro"]})  # fmt: skip
        else:
            raise AssertionError(f"volume kind of {volume} is not emulated")
    return mounts


class Container:
    """One runc container, detached; its stdout and stderr go to a log file."""

    def __init__(self, spec: Mapping[str, Any], folder: Path, grace_seconds: float = 10) -> None:
        self.grace_seconds = grace_seconds  # the pod's terminationGracePeriodSeconds
        self.id = f"mgart{uuid.uuid4().hex[:10]}"
        self.bundle = folder / self.id
        self.bundle.mkdir(parents=True)
        self.state = folder / "runc-state"
        self.log = self.bundle / "output.log"
        self.cgroups_path = str(spec["linux"]["cgroupsPath"])
        (self.bundle / "config.json").write_text(json.dumps(spec))

    def runc(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["runc", "--root", str(self.state), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"runc {args[0]}: {done.stderr.strip()}\n{self.output()[-3000:]}")
        return done.stdout

    def run_to_end(self, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run it in the foreground: its exit code and output, then remove it."""
        try:
            return subprocess.run(
                ["runc", "--root", str(self.state), "run", "--bundle", str(self.bundle), self.id],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                check=False,
            )  # fmt: skip
        finally:
            self.runc("delete", "--force", self.id, check=False)
            remove_runtime_cgroups(self.cgroups_path)

    def start(self) -> Container:
        with self.log.open("wb") as log:
            done = subprocess.run(
                ["runc", "--root", str(self.state), "run", "--detach", "--bundle",
                 str(self.bundle), self.id],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"runc run exited {done.returncode}:\n{self.output()[-3000:]}")
        return self

    @property
    def pid(self) -> int:
        return int(json.loads(self.runc("state", self.id))["pid"])

    def running(self) -> bool:
        state = self.runc("state", self.id, check=False)
        return bool(state) and json.loads(state)["status"] == "running"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """SIGTERM, as the kubelet sends it; SIGKILL after the grace period; then remove it and
        its cgroups."""
        if self.running():
            self.runc("kill", self.id, "TERM", check=False)
            if not self.wait_exit(self.grace_seconds):
                self.runc("kill", self.id, "KILL", check=False)
                self.wait_exit(5)
        self.runc("delete", "--force", self.id, check=False)
        remove_runtime_cgroups(self.cgroups_path)


def kubepods_path(qos: str = "burstable") -> str:
    """A container's cgroup as the kubelet's cgroupfs driver names it (relative: nested here):
    ``kubepods/<qos>/pod<pod uid>/<container id>``."""
    return f"kubepods/{qos}/pod{uuid.uuid4()}/{uuid.uuid4().hex}{uuid.uuid4().hex}"


def pod_and_container(cgroups_path: str) -> tuple[str, str]:
    """The pod UID and container ID a :func:`kubepods_path` names."""
    *_, pod_level, container_id = cgroups_path.split("/")
    return pod_level.removeprefix("pod"), container_id


@contextlib.contextmanager
def running(
    spec: Mapping[str, Any], folder: Path, grace_seconds: float = 10
) -> Iterator[Container]:
    """A started container, stopped and removed afterwards."""
    container = Container(spec, folder, grace_seconds)
    try:
        yield container.start()
    finally:
        container.stop()


def wait_for_output(
    container: Container, found: Callable[[str], Any], timeout: float, what: str
) -> Any:
    """Poll the container's output until ``found(output)`` is truthy; fail with the output."""
    deadline = time.monotonic() + timeout
    while True:
        value = found(container.output())
        if value:
            return value
        if not container.running():
            raise AssertionError(f"{what}: the container exited:\n{container.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s:\n{container.output()[-3000:]}")
        time.sleep(0.1)
