"""Interpreter one-liners: their string literals seen as a shell command's words.

``python -c``, ``perl -e``, ``node -e``, ``ruby -e`` and ``php -r`` start a miner with the
same command line hidden in the language's literals: lists, concatenation, decoder calls. The
engine must see the pool, wallet and options exactly as in a shell command, and a one-liner
that merely prints the word "pool" stays allowed.
"""

from __future__ import annotations

import base64
import codecs
import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerguard.compiled_policy import default_policy
from minerguard.signatures import engine, interpreters
from minerguard.signatures.engine import Subject

POLICY = default_policy()
ARGS = ["./x", "-o", "pool.supportxmr.com:3333", "--donate-level", "1"]
LINE = " ".join(ARGS)
HEX = LINE.encode().hex()
B64 = base64.b64encode(LINE.encode()).decode()


def judge(*argv: str) -> engine.Verdict:
    return POLICY.engine.evaluate(Subject(argv=argv))


ATTACKS = {
    "python list literal": (
        "python3",
        "-c",
        "import subprocess; subprocess.call(" + repr(ARGS) + ")",
    ),
    "python concatenation": (
        "python",
        "-c",
        "import os; os.system('./x -o pool.supp' + 'ortxmr.com:' + '3333 --donate' + '-level 1')",
    ),
    "python bytes.fromhex": (
        "python3",
        "-c",
        f"import os; os.system(bytes.fromhex('{HEX}').decode())",
    ),
    "python base64": (
        "python3",
        "-c",
        f'import os,base64; os.system(base64.b64decode("{B64}").decode())',
    ),
    "python rot13": (
        "python3",
        "-c",
        f"import os,codecs; os.system(codecs.decode('{codecs.encode(LINE, 'rot13')}', 'rot13'))",
    ),
    "python zlib over base64": (
        "python3",
        "-c",
        "import os,zlib,base64; os.system(zlib.decompress(base64.b64decode('"
        + base64.b64encode(gzip.compress(LINE.encode())).decode()
        + "')).decode())",
    ),
    "python triple quotes": (
        "python3",
        "-c",
        f'import os\nos.system("""{LINE}""")',
    ),
    "python join": (
        "python3",
        "-uc",
        "import os; os.system(' '.join(" + repr(ARGS) + "))",
    ),
    "perl concatenation": (
        "perl",
        "-e",
        'exec "./x", "-o", "pool.supp"."ortxmr.com:3333", "--donate-level", "1"',
    ),
    "perl -MIO": (
        "perl",
        "-MIO::Handle",
        "-le",
        "system(q{ignored}); exec('./x', '-o', 'pool.supportxmr.com:3333', '--donate-level', '1')",
    ),
    "node spawn": (
        "node",
        "-e",
        "require('child_process').spawn('./x', "
        + repr(ARGS[1:]).replace("'", '"')
        + ", {detached: true})",
    ),
    "node Buffer base64": (
        "node",
        "-e",
        f"require('child_process').execSync(Buffer.from('{B64}', 'base64').toString())",
    ),
    "ruby": (
        "ruby",
        "-e",
        "exec('./x', '-o', 'pool.' + 'supportxmr.com:3333', '--donate-level', '1')",
    ),
    "php": ("php", "-r", f"system(base64_decode('{B64}'));"),
    "php concatenation": (
        "php",
        "-r",
        "shell_exec('./x -o pool.' . 'supportxmr.com:3333 --donate-level 1');",
    ),
    "python via sh -c": (
        "sh",
        "-c",
        'python3 -c "import subprocess; subprocess.call(' + repr(ARGS) + ')"',
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_miner_in_a_one_liner_is_denied(name: str) -> None:
    verdict = judge(*ATTACKS[name])
    assert verdict.matched, name
    assert {"pool-host", "miner-option"} <= {s.name for s in verdict.signals}
    where = next(s.where for s in verdict.signals if s.name == "pool-host")
    assert any(f"({lang} " in where for lang in ("python", "perl", "node", "ruby", "php"))


def test_the_where_names_the_interpreter_and_the_decoding() -> None:
    verdict = judge(*ATTACKS["python bytes.fromhex"])
    assert {s.where for s in verdict.signals if s.name == "pool-host"} == {
        "command (python -c, hex)"
    }


@pytest.mark.parametrize(
    "argv",
    [
        ("python", "-c", 'print("pool")'),
        ("python3", "-c", "import sys; print(sys.version)"),
        ("python3", "-c", "import socket; socket.create_connection(('db', 5432))"),
        ("node", "-e", "console.log('stratum layer ' + 'ready')"),
        ("perl", "-e", 'print "worker pool size: " . 4 . "\\n"'),
        ("ruby", "-e", "puts [1, 2, 3].sum"),
        ("php", "-r", "echo base64_decode('aGVsbG8gd29ybGQ=');"),
        ("python3", "-c", f"print(bytes.fromhex('{b'hello world'.hex()}'))"),
        ("python3", "script.py", "-c", "config.yaml"),
    ],
)
def test_harmless_one_liners_stay_allowed(argv: tuple[str, ...]) -> None:
    verdict = judge(*argv)
    assert not verdict.matched
    assert verdict.signals == ()


def test_the_code_is_found_whatever_the_flags() -> None:
    found = interpreters.one_liner(["/usr/bin/python3.11", "-W", "ignore", "-Sc", "x=1"])
    assert found is not None
    assert (found.language, found.code) == ("python", "x=1")
    assert interpreters.one_liner(["perl", "-MIO::Socket", "-e", "1"]) is not None
    assert interpreters.one_liner(["node", "--eval", "1"]) is not None
    assert interpreters.one_liner(["python3", "app.py", "-c", "x"]) is None
    assert interpreters.one_liner(["php-fpm", "-r", "x"]) is None


def test_literals_become_argv_lists_and_strings() -> None:
    found = interpreters.literals("f(['a', 'b' + 'c']); g('d' 'e')", "python", 1 << 10)
    assert found.lists == (("a", "bc"),)
    assert found.strings == ("de",)


@settings(max_examples=300, deadline=None)
@given(
    code=st.text(alphabet="'\"`[](),+.\\xab0123 fromhexb64decode", max_size=200),
    language=st.sampled_from(["python", "perl", "node", "ruby", "php"]),
)
def test_tokenising_never_raises(code: str, language: str) -> None:
    interpreters.literals(code, language, 1 << 12)
