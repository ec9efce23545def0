import base64

from minerguard.signatures import normalise


def test_confusables_and_compatibility_forms_fold_to_ascii() -> None:
    assert normalise.fold("xmrіg") == "xmrig"  # Cyrillic і
    assert normalise.fold("ＸＭＲｉｇ") == "xmrig"
    assert normalise.fold("рооl") == "pool"  # Cyrillic р and о
    assert normalise.plain("4AbC") == "4AbC"  # case kept for wallets


def test_shell_scripts_split_into_unquoted_commands() -> None:
    script = """a 'b c' "d \\"e\\"" && f|g; h $(i j) `k`"""
    assert normalise.shell_commands(script) == [
        ["a", "b c", 'd "e"'],
        ["f"],
        ["g"],
        ["h", "$"],
        ["i", "j"],
        ["k"],
    ]


def test_unbalanced_quotes_still_yield_the_words() -> None:
    assert normalise.shell_commands('xmrig "-o pool') == [["xmrig", "-o", "pool"]]


def test_wrappers_are_unwrapped() -> None:
    argv = ["env", "A=1", "nohup", "timeout", "10s", "taskset", "0x3", "./xmrig", "-a"]
    assert normalise.unwrap(argv) == ["./xmrig", "-a"]


def test_shell_script_is_found_in_combined_flags() -> None:
    assert normalise.shell_script(["/bin/bash", "-ec", "run"]) == "run"
    assert normalise.shell_script(["/bin/bash", "script.sh"]) is None


def test_base64_payloads_are_bounded_and_text_only() -> None:
    text = base64.b64encode(b"xmrig --donate-level 1").decode()
    junk = base64.b64encode(bytes(range(256))).decode()
    budget = [1 << 10]
    assert list(normalise.base64_payloads([text, junk, "short"], budget)) == [
        "xmrig --donate-level 1"
    ]
    assert budget[0] == (1 << 10) - len("xmrig --donate-level 1")
    assert list(normalise.base64_payloads([text], [0])) == []
