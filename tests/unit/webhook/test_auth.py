"""Challenges, pull-secret credentials and token answers."""

from __future__ import annotations

import base64
import json

import pytest

from minerguard.oci import auth


def secret(document: object, kind: str = auth.DOCKERCONFIGJSON) -> dict[str, object]:
    field = ".dockerconfigjson" if kind == auth.DOCKERCONFIGJSON else ".dockercfg"
    encoded = base64.b64encode(json.dumps(document).encode()).decode()
    return {"type": kind, "data": {field: encoded}}


def test_a_bearer_challenge_is_parsed_with_quotes_and_commas() -> None:
    found = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert found is not None
    assert found.scheme == "bearer"
    assert found.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }


def test_a_basic_challenge_and_garbage_do_not_raise() -> None:
    basic = auth.parse_challenge('Basic realm="r"')
    assert basic is not None
    assert basic.scheme == "basic"
    assert auth.parse_challenge("") is None
    unterminated = auth.parse_challenge('Bearer realm="unterminated')
    assert unterminated == auth.Challenge("bearer", {"realm": "unterminated"})


def test_docker_config_json_secrets_give_credentials_per_registry() -> None:
    chain = auth.keychain_from_secret(
        secret(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                    "registry.example:5000": {"username": "u", "password": "p"},
                    "broken.example": {"auth": "%%%"},
                }
            }
        )
    )
    assert chain == {
        "docker.io": auth.Credentials("hub", "pw"),
        "registry.example:5000": auth.Credentials("u", "p"),
    }


def test_legacy_dockercfg_secrets_are_read_too() -> None:
    chain = auth.keychain_from_secret(
        secret({"quay.io": {"username": "q", "password": "x"}}, auth.DOCKERCFG)
    )
    assert chain == {"quay.io": auth.Credentials("q", "x")}


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"data": None},
        {"type": auth.DOCKERCONFIGJSON, "data": {".dockerconfigjson": "not base64!"}},
        {"type": auth.DOCKERCONFIGJSON, "data": {".dockerconfigjson": "W10="}},  # []
        {"type": auth.DOCKERCONFIGJSON, "data": {".dockerconfigjson": "e30="}},  # {}
    ],
)
def test_unreadable_secrets_give_no_credentials(broken: dict[str, object]) -> None:
    assert auth.keychain_from_secret(broken) == {}


def test_the_first_secret_naming_a_registry_wins() -> None:
    first = {"r.example": auth.Credentials("a", "1")}
    second = {"r.example": auth.Credentials("b", "2"), "s.example": auth.Credentials("c", "3")}
    merged = auth.merge_keychains([first, second])
    assert merged["r.example"].username == "a"
    assert merged["s.example"].username == "c"


def test_passwords_never_appear_in_a_repr() -> None:
    assert "hunter2" not in repr(auth.Credentials("me", "hunter2"))


def test_token_answers_accept_both_field_names() -> None:
    assert auth.token_from_answer(b'{"token": "t", "expires_in": 30}') == ("t", 30.0)
    assert auth.token_from_answer(b'{"access_token": "a"}') == ("a", None)
    with pytest.raises(ValueError, match="no token"):
        auth.token_from_answer(b'{"nothing": 1}')
