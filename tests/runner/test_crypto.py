"""v1 session-key unwrap and message decryption (docs/protocol.md, "Broker (v2) and pipelines (v1)")."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actions_scaleset import InvalidResponseError
from actions_scaleset.runner._crypto import (
    decrypt_message_body,
    encrypt_message_body,
    unwrap_session_key,
    wrap_session_key,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

keys = st.binary(min_size=32, max_size=32)
ivs = st.binary(min_size=16, max_size=16)


@settings(max_examples=25, deadline=None)
@given(key=keys, hash_name=st.sampled_from(["sha256", "sha1"]))
def test_a_session_key_wrapped_by_the_server_unwraps_with_either_oaep_hash(
    rsa_key: RSAPrivateKey, key: bytes, hash_name: str
) -> None:
    wrapped = wrap_session_key(rsa_key.public_key(), key, hash_name=hash_name)  # type: ignore[arg-type]

    assert unwrap_session_key(rsa_key, wrapped) == (key, hash_name)


@given(key=keys, iv=ivs, text=st.text())
def test_a_message_encrypted_by_the_server_decrypts_to_its_text(key: bytes, iv: bytes, text: str) -> None:
    assert decrypt_message_body(key, iv, encrypt_message_body(key, iv, text)) == text


def test_a_bom_in_the_plaintext_is_dropped() -> None:
    key, iv = os.urandom(32), os.urandom(16)

    assert decrypt_message_body(key, iv, encrypt_message_body(key, iv, "\ufeff{}")) == "{}"


def test_a_key_wrapped_for_another_runner_is_a_typed_error(rsa_key: RSAPrivateKey) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    wrapped = wrap_session_key(other.public_key(), os.urandom(32))

    with pytest.raises(InvalidResponseError, match="could not be decrypted with the runner's private key"):
        unwrap_session_key(rsa_key, wrapped)


def test_a_wrapped_value_that_is_not_an_aes_key_is_a_typed_error(rsa_key: RSAPrivateKey) -> None:
    wrapped = wrap_session_key(rsa_key.public_key(), b"short")

    with pytest.raises(InvalidResponseError, match="5 bytes long"):
        unwrap_session_key(rsa_key, wrapped)


@pytest.mark.parametrize(
    ("iv", "ciphertext", "message"),
    [
        (b"x" * 8, b"y" * 16, "IV is 8 bytes"),
        (b"x" * 16, b"", "whole number of AES blocks"),
        (b"x" * 16, b"y" * 17, "whole number of AES blocks"),
    ],
)
def test_malformed_ciphertext_is_a_typed_error(iv: bytes, ciphertext: bytes, message: str) -> None:
    with pytest.raises(InvalidResponseError, match=message):
        decrypt_message_body(os.urandom(32), iv, ciphertext)


@given(key=keys, other=keys, iv=ivs, text=st.text(min_size=1))
def test_the_wrong_session_key_never_yields_an_untyped_error(
    key: bytes, other: bytes, iv: bytes, text: str
) -> None:
    ciphertext = encrypt_message_body(key, iv, text)
    try:
        result = decrypt_message_body(other, iv, ciphertext)
    except InvalidResponseError:
        return
    assert key == other or isinstance(result, str)
