"""The wheel installed into a fresh virtualenv, and its commands run as a user runs them.

Every command runs with its working folder outside the checkout and an environment holding
nothing of the test run's (no ``PYTHONPATH``, no ``VIRTUAL_ENV``), so whatever it imports comes
from the virtualenv or nowhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Virtualenv:
    """A virtualenv holding the installed wheel, and a scratch folder to run commands in."""

    root: Path
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "PATH": f"{self.root / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            **(extra or {}),
        }

    def run(
        self,
        command: str,
        *args: str | Path,
        env: Mapping[str, str] | None = None,
        input: str | None = None,  # noqa: A002 - subprocess's name
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the virtualenv to its end; its exit code is the caller's to judge."""
        return subprocess.run(
            [self.bin(command), *map(str, args)],
            cwd=self.workdir,
            env=self.env(env),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextlib.contextmanager
    def started(
        self, command: str, *args: str | Path, env: Mapping[str, str] | None = None
    ) -> Iterator[Process]:
        """A long-running command of the virtualenv, ended (SIGTERM) after the block."""
        log = self.workdir / f"{command}-{os.urandom(4).hex()}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [self.bin(command), *map(str, args)],
                cwd=self.workdir,
                env=self.env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(popen, log)
        try:
            yield process
        finally:
            process.stop()


@dataclass(frozen=True)
class Process:
    """A started command and the file its output goes to."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        """Whether it still runs; fails the test with its output when it ended."""
        code = self.popen.poll()
        if code is not None:
            raise AssertionError(f"exited with {code}:\n{self.output()[-3000:]}")
        return True

    def stop(self) -> None:
        """SIGTERM to its session, SIGKILL after 10 s."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


@contextlib.contextmanager
def showing(output: Callable[[], str]) -> Iterator[None]:
    """A failure inside the block carries the end of a process's output."""
    try:
        yield
    except AssertionError as err:
        raise AssertionError(f"{err}\n-- its output:\n{output()[-3000:]}") from err


def flag_for_no_cluster(help_text: str) -> str:
    """The agent's flag for running without a cluster, whichever name this version gives it."""
    for flag in ("--no-cluster", "--standalone"):
        if flag in help_text.split():
            return flag
    raise AssertionError(f"minerguard agent --help names no flag for running without a cluster:\n"
                         f"{help_text}")  # fmt: skip
