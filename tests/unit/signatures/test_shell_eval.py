"""The bounded shell evaluator: encodings and shell tricks undone, every step bounded.

Each attack hides the same miner command line with one technique; the engine must see it as
if it were written plainly, and say how it was decoded. Benign look-alikes (a harmless script
in the same encodings) stay allowed, and payloads built to exhaust the evaluator are cut at
its bounds, quickly, and reported.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import lzma
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerguard.compiled_policy import default_policy
from minerguard.signatures import engine, shell
from minerguard.signatures.engine import Subject

POLICY = default_policy()
MINER = "./x -o pool.supportxmr.com:3333 --donate-level 1 --randomx-mode fast"
HARMLESS = "echo hello; nginx -g 'daemon off;'"
ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)


def judge(script: str, shell_name: str = "sh") -> engine.Verdict:
    return POLICY.engine.evaluate(Subject(argv=(shell_name, "-c", script)))


def hex_of(text: str) -> str:
    return text.encode().hex()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ENCODINGS: dict[str, Callable[[str], str]] = {
    "hex": lambda s: f"echo {hex_of(s)} | xxd -r -p | sh",
    "printf-hex": lambda s: "printf '" + "".join(f"\\x{b:02x}" for b in s.encode()) + "' | sh",
    "printf-octal": lambda s: "printf '" + "".join(f"\\{b:03o}" for b in s.encode()) + "' | sh",
    "echo-e": lambda s: "echo -e '" + "".join(f"\\x{b:02x}" for b in s.encode()) + "' | bash",
    "ansi-c": lambda s: "eval $'" + "".join(f"\\x{b:02x}" for b in s.encode()) + "'",
    "gzip": lambda s: f"echo {b64(gzip.compress(s.encode()))} | base64 -d | gunzip | sh",
    "zcat": lambda s: f"echo {b64(gzip.compress(s.encode()))} | base64 --decode | zcat | bash",
    "xz": lambda s: f"echo {b64(lzma.compress(s.encode()))} | base64 -d | xz -d | sh",
    "bzip2": lambda s: f"echo {b64(bz2.compress(s.encode()))} | base64 -d | bzcat | sh",
    "rev": lambda s: f"echo '{s[::-1]}' | rev | sh",
    "rot13": lambda s: f"echo '{s.translate(ROT13)}' | tr 'A-Za-z' 'N-ZA-Mn-za-m' | sh",
    "tr-range": lambda s: (
        "echo '"
        + s.translate(str.maketrans("abcdefghijklmnopqrstuvwxyz", "bcdefghijklmnopqrstuvwxyza"))
        + "' | tr 'b-za' 'a-z' | sh"
    ),
    "eval-substitution": lambda s: f'eval "$(echo {b64(s.encode())} | base64 -d)"',
    "backticks": lambda s: f"eval `echo {b64(s.encode())} | base64 -d`",
    "sh-c-variable": lambda s: f'x=$(echo {hex_of(s)} | xxd -r -p); sh -c "$x"',
    "brace-list": lambda s: "{echo," + b64(s.encode()) + "}|{base64,-d}|{bash,-i}",
    "here-string": lambda s: f"base64 -d <<< {b64(s.encode())} | sh",
}


def test_the_miner_is_denied_when_written_plainly() -> None:
    assert judge(MINER).matched


@pytest.mark.parametrize("technique", sorted(ENCODINGS))
def test_an_encoded_miner_is_denied_and_the_decoding_is_named(technique: str) -> None:
    verdict = judge(ENCODINGS[technique](MINER))
    assert verdict.matched, technique
    assert {"pool-host", "miner-option"} <= {s.name for s in verdict.signals}
    pool = next(s for s in verdict.signals if s.name == "pool-host")
    assert pool.where.startswith("command (sh -c")


@pytest.mark.parametrize("technique", sorted(ENCODINGS))
def test_a_harmless_script_in_the_same_encoding_stays_allowed(technique: str) -> None:
    verdict = judge(ENCODINGS[technique](HARMLESS))
    assert not verdict.matched
    assert verdict.signals == ()


def test_the_where_says_how_it_was_decoded() -> None:
    verdict = judge(ENCODINGS["gzip"](MINER))
    pool = next(s for s in verdict.signals if s.name == "pool-host")
    assert pool.where == "command (sh -c, base64, gzip)"
    hexed = judge(ENCODINGS["hex"](MINER))
    assert next(s for s in hexed.signals if s.name == "pool-host").where == "command (sh -c, hex)"


@pytest.mark.parametrize(
    "script",
    [
        "p=./sys; q=temd; h=supportxmr; $p$q -o pool.$h.com:3333 --don''ate-level 1",
        'h=supp; h=${h}ortxmr; o=--donate; ./x -o "pool.$h.com:3333" ${o}-level=1',
        "a='pool.suppo'; b=\"${a}rtxmr.com\"; c=$b:3333; eval ./x -o $c --dona''te-level 1",
        "cmd='./x -o pool.'; cmd+='supportxmr.com:3333 --donate-level 1'; sh -c \"$cmd\"",
        "s=xpool.supportxmr.comx; ./x -o ${s:1:19}:3333 --donate-level 1",
    ],
)
def test_a_command_assembled_from_fragments_is_denied(script: str) -> None:
    verdict = judge(script)
    assert verdict.matched
    assert "pool-host" in {s.name for s in verdict.signals}


def test_a_script_in_an_environment_value_is_evaluated() -> None:
    script = "h=supportxmr; ./x -o pool.$h.com:3333 --donate-level 1"
    verdict = POLICY.engine.evaluate(Subject(argv=("/entrypoint",), env=(("BOOT", script),)))
    assert verdict.matched
    assert {s.where for s in verdict.signals if s.name == "pool-host"} == {"env BOOT"}


def test_nested_encodings_compose() -> None:
    inner = ENCODINGS["rot13"](MINER)
    outer = ENCODINGS["gzip"](inner)
    verdict = judge(ENCODINGS["hex"](outer))
    assert verdict.matched
    pool = next(s for s in verdict.signals if s.name == "pool-host")
    assert pool.where == "command (sh -c, hex, base64, gzip, rot13)"


# -- bounds ---------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_gzip_bomb_piped_into_a_shell_is_cut_and_is_a_signal_alone_below_the_threshold() -> None:
    bomb = b64(gzip.compress(b"\n" * (64 << 20)))
    result = shell.evaluate(f"echo {bomb} | base64 -d | gunzip | sh")
    assert result.obfuscated
    assert result.produced <= shell.Limits().output
    verdict = judge(f"echo {bomb} | base64 -d | gunzip | sh")
    assert [s.name for s in verdict.signals] == ["obfuscated-shell"]
    assert not verdict.matched


@pytest.mark.timeout(20)
def test_a_one_mebibyte_hex_payload_is_cut_at_the_output_bound() -> None:
    payload = "41" * (1 << 19)
    result = shell.evaluate(f"echo {payload} | xxd -r -p | sh")
    assert result.obfuscated
    assert result.produced <= shell.Limits().output


def test_an_obfuscated_payload_with_a_mining_signal_is_denied() -> None:
    bomb = b64(gzip.compress(b"\n" * (1 << 20)))
    verdict = judge(f"echo {bomb} | base64 -d | gunzip | sh; xmrig")
    assert verdict.matched
    assert "rule/obfuscated-with-mining" in {s.name for s in verdict.signals}


@pytest.mark.timeout(20)
def test_deeply_nested_eval_stops_at_the_depth_bound() -> None:
    script = f"x0='{MINER}'; "
    script += "".join(f"x{i}='eval $x{i - 1}'; " for i in range(1, 200))
    result = shell.evaluate(script + "eval $x199")
    assert result.obfuscated
    assert not any(c.argv[:1] == ("./x",) for c in result.commands)
    shallow = shell.evaluate(f"x0='{MINER}'; x1='eval $x0'; x2='eval $x1'; eval $x2")
    assert any(c.argv[:1] == ("./x",) for c in shallow.commands)


@pytest.mark.timeout(20)
def test_deeply_nested_substitutions_never_recurse_without_bound() -> None:
    result = shell.evaluate("$(" * 50_000 + "xmrig" + ")" * 50_000)
    assert result.words < 100
    shell.evaluate("`" * 50_000)
    shell.evaluate('echo "$(' * 20_000)


@pytest.mark.timeout(20)
def test_a_self_referencing_variable_is_cut_at_the_output_bound() -> None:
    doubling = "x=a; " + "x=$x$x; " * 200 + "echo $x | sh"
    result = shell.evaluate(doubling)
    assert result.produced <= shell.Limits().output
    assert result.obfuscated
    recursive = shell.evaluate("x='eval $x'; eval $x")
    assert recursive.obfuscated


@pytest.mark.timeout(20)
def test_the_variable_count_is_bounded() -> None:
    limits = shell.Limits()
    shell.evaluate("; ".join(f"v{i}={i}" for i in range(10_000)) + "; echo $v1", limits)
    assert limits.cut


def test_a_review_budget_is_charged_for_what_the_evaluator_produces() -> None:
    script = ENCODINGS["gzip"](MINER)
    with engine.budget(words=10_000, chars=1 << 20) as spent:
        assert judge(script).matched
    assert spent.words < 10_000
    assert spent.chars < (1 << 20) - len(script)
    with engine.budget(words=3, chars=1 << 20) as tight:
        verdict = judge(script)
    assert tight.cut
    assert verdict.incomplete


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "a",
                "=",
                "$",
                "(",
                ")",
                "{",
                "}",
                "`",
                "'",
                '"',
                "\\",
                "|",
                ";",
                "&",
                "<",
                ">",
                " ",
                "\n",
                "-d",
                "echo ",
                "base64",
                "eval ",
                "sh",
                "xxd -r -p",
                "gunzip",
                "$'",
                "printf ",
                "\\x41",
                "tr ",
                "rev",
                "x=",
                "$x",
                "${x:1:2}",
                "curl http://1.2.3.4/a",
            ]
        ),
        max_size=60,
    ).map("".join)
)
def test_the_evaluator_never_raises(script: str) -> None:
    result = shell.evaluate(script)
    assert result.produced <= shell.Limits().output


def test_what_an_encoded_command_line_names_is_visible_to_callers() -> None:
    argv = ("sh", "-c", f"echo {b64(b'sh /scripts/run.sh')} | base64 -d | sh")
    assert ("sh", "/scripts/run.sh") in shell.commands_of(argv)
    assert shell.commands_of(("nginx", "-g", "daemon off;")) == [("nginx", "-g", "daemon off;")]


@pytest.mark.parametrize(
    "script",
    [
        f"echo {b64(MINER.encode())} > /tmp/p.b64; base64 -d /tmp/p.b64 > /tmp/p.sh; sh /tmp/p.sh",
        f"printf '%s' '{hex_of(MINER)}' > /tmp/h; xxd -r -p /tmp/h | bash",
        f"cat > /tmp/run.sh <<EOF\n{MINER}\nEOF\nchmod +x /tmp/run.sh; . /tmp/run.sh",
    ],
)
def test_a_script_written_to_a_file_and_then_run_is_evaluated(script: str) -> None:
    verdict = judge(script)
    assert verdict.matched
    assert "pool-host" in {s.name for s in verdict.signals}


def test_an_encoded_payload_is_judged_as_what_it_decodes_to_not_as_written() -> None:
    # rot13 turns a web server's "-b 0.0.0.0:8000" into "-o 0.0.0.0:8000": the payload as
    # written is data, not the miner-shaped command line it happens to look like.
    written = "gunicorn app.wsgi -b 0.0.0.0:8000".translate(ROT13)
    verdict = judge(f"printf '%s\\n' '{written}' | tr 'A-Za-z' 'N-ZA-Mn-za-m' | sh")
    assert verdict.signals == ()
    result = shell.evaluate(f"echo {hex_of(MINER)} | xxd -r -p | sh")
    assert [c.argv[0] for c in result.commands] == ["xxd", "./x"]  # no "echo <payload>"
