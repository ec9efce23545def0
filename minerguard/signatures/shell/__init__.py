r"""A small, bounded shell evaluator: what a script will run once its tricks are undone.

Attackers hide a miner's command line from word matching with the shell itself: fragments
assembled in variables (``p=stra; q=tum; $p$q``), ``eval``, command substitution, brace
lists (``{echo,PAYLOAD}|{base64,-d}|sh``), and decoders piped into a shell (base64, hex,
octal and ``\\x`` escapes, ANSI-C ``$'...'`` strings, gzip/xz/bzip2, ``rev``, ``tr``). A regex
per trick never ends; this package models the few shell mechanisms they all rest on. It parses
a script, keeps its variables, runs the decoders on the data that flows through pipelines and
substitutions, follows ``eval``, ``sh -c`` and pipes into a shell, and returns every simple
command the script would run, each labelled with how it was decoded. It also returns the
droppers it saw (a remote script or binary fetched and run: ``curl|sh``, ``sh -c
"$(curl ...)"``, download then run). It never runs anything.

Every step is bounded by :class:`Limits`, which callers may share across several scripts
(the engine shares one per evaluation): bytes produced by expansions and decoders, number of
evaluations (``eval``, ``sh -c``, substitutions, pipes into a shell), nesting depth, number of
variables, and words. Work is linear in the input plus what the limits allow, and nothing
here raises or loops: a loop body runs once, a function is never called. A decoding cut by a
limit on its way into a shell is reported (``obfuscated``): a payload too large or too deep
to decode is itself a signal.
"""

from minerguard.signatures.shell.run import (
    Command,
    Dropper,
    File,
    Result,
    commands_of,
    evaluate,
)
from minerguard.signatures.shell.syntax import Limits

__all__ = ["Command", "Dropper", "File", "Limits", "Result", "commands_of", "evaluate"]
