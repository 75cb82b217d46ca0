"""Figure 6, the runner protocol: OAuth client assertions signed, v1 messages decrypted, per CPU-second.

* **Assertions**: the runner's RS256 client-assertion JWT (2048-bit key), as the SDK builds
  it (`actions_scaleset.runner.build_client_assertion`) vs `jwt.encode(claims, key,
  algorithm="RS256")` with PyJWT directly and the same claims (`sub`, a fresh `jti`, `iss`,
  `aud`, `nbf`, `exp = nbf + 300`).
* **Decryption**: a v1 pool message body (AES-256-CBC, PKCS#7, a job message of about
  11 KB) through the SDK's `decrypt_message_body` vs `cryptography`'s AES-CBC decryptor,
  its PKCS#7 unpadder and a UTF-8 decode of the same bytes.

The issue sets no target for these; the ratio shows what the SDK's wrapping costs.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import jwt
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from actions_scaleset.runner import build_client_assertion, decrypt_message_body, encrypt_message_body
from benchmarks._harness import Row, calibrate, interleave, note, rate

CLIENT_ID = "6a1f0c9e-3b7d-4e21-9c55-0d4f2a8b7e13"
AUDIENCE = "https://pipelines.actions.example/_apis/oauth2/token"


def job_message() -> str:
    """A plausible v1 job message: about 11 KB of JSON."""
    steps = [
        {
            "id": str(uuid.UUID(int=i)),
            "name": f"step {i}",
            "type": "action",
            "reference": {"type": "script"},
            "inputs": {"type": 2, "map": [{"key": "script", "value": f"make test-{i} " + "x" * 80}]},
        }
        for i in range(40)
    ]
    return json.dumps(
        {"messageType": "PipelineAgentJobRequest", "plan": {"planId": str(uuid.uuid4())}, "steps": steps}
    )


def run(rounds: int, round_seconds: float) -> list[Row]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sdk_sign() -> object:
        return build_client_assertion(
            client_id=CLIENT_ID, audience=AUDIENCE, private_key=key, now=time.time(), fips=False
        )

    def raw_sign() -> object:
        nbf = int(time.time())
        claims = {
            "sub": CLIENT_ID,
            "jti": str(uuid.uuid4()),
            "iss": CLIENT_ID,
            "aud": AUDIENCE,
            "nbf": nbf,
            "exp": nbf + 300,
        }
        return jwt.encode(claims, key, algorithm="RS256")

    text = job_message()
    aes_key, iv = os.urandom(32), os.urandom(16)
    ciphertext = encrypt_message_body(aes_key, iv, text)

    def sdk_decrypt() -> object:
        return decrypt_message_body(aes_key, iv, ciphertext)

    def raw_decrypt() -> object:
        decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")

    assert sdk_decrypt() == raw_decrypt() == text
    public = key.public_key()
    made = build_client_assertion(
        client_id=CLIENT_ID, audience=AUDIENCE, private_key=key, now=time.time(), fips=False
    )
    for token in (made.get_secret_value(), str(raw_sign())):
        claims = jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE)
        assert claims["sub"] == claims["iss"] == CLIENT_ID
        assert claims["exp"] - claims["nbf"] == 300

    rows = []
    for name, sdk, baseline in (
        ("OAuth client assertions (RS256) signed per CPU-second", sdk_sign, raw_sign),
        (f"v1 messages ({len(ciphertext):,} B) decrypted per CPU-second", sdk_decrypt, raw_decrypt),
    ):
        sdk_calls, base_calls = calibrate(sdk, round_seconds), calibrate(baseline, round_seconds)
        note(f"runner: {name}: {rounds} rounds of {sdk_calls} / {base_calls} calls")
        sdk_rates, base_rates = interleave(rounds, rate(sdk, sdk_calls), rate(baseline, base_calls))
        rows.append(Row("6 runner protocol", name, sdk_rates, base_rates, digits=0, higher_is_better=True))
    return rows
