"""Runner cryptography as pure functions (docs/protocol.md, "JIT configs", "Broker (v2) and pipelines (v1)").

* .NET `RSAParameters` (unsigned big-endian base64 integers) <-> a `cryptography`
  RSA private key;
* the v1 session key: RSA-OAEP unwrap (SHA-256, falling back to SHA-1);
* v1 message bodies: AES-256-CBC with a per-message IV and PKCS#7 padding.

The `wrap_session_key` and `encrypt_message_body` halves do what the server does;
they exist for tests and for fakes of the pipelines service.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from ..errors import InvalidJitConfigError, InvalidResponseError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

__all__ = [
    "RSAParameters",
    "decrypt_message_body",
    "encrypt_message_body",
    "unwrap_session_key",
    "wrap_session_key",
]

_UTF8_BOM: Final = "\ufeff"
_AES_BLOCK: Final = 16
_AES_KEY_SIZES: Final = frozenset({16, 24, 32})
_FIELDS: Final = ("d", "dp", "dq", "exponent", "inverseQ", "modulus", "p", "q")
OaepHash = Literal["sha256", "sha1"]


@attrs.frozen(repr=False)
class RSAParameters:
    """The runner's RSA key as .NET `RSAParameters` numbers (`.credentials_rsaparams`).

    Every number is a secret except `modulus` and `exponent`; `repr()` shows the key size only.
    `dp`, `dq` and `inverse_q` may be 0 when a file omits them: they are derived from p, q, d.
    """

    modulus: int
    exponent: int
    d: int = attrs.field(eq=False)
    p: int = attrs.field(eq=False)
    q: int = attrs.field(eq=False)
    dp: int = attrs.field(default=0, eq=False)
    dq: int = attrs.field(default=0, eq=False)
    inverse_q: int = attrs.field(default=0, eq=False)

    def __repr__(self) -> str:
        return f"RSAParameters(bits={self.modulus.bit_length()}, exponent={self.exponent})"

    @classmethod
    def from_json(cls, data: Any, *, where: str = "`.credentials_rsaparams`") -> RSAParameters:
        """Read the JSON object; keys match case-insensitively. Raises `InvalidJitConfigError`.

        Error messages name the field, never its value.
        """
        if not isinstance(data, Mapping):
            raise InvalidJitConfigError(f"{where} is not a JSON object")
        lowered = {str(key).lower(): value for key, value in data.items()}
        numbers: dict[str, int] = {}
        for name in _FIELDS:
            value = lowered.get(name.lower())
            if value is None or value == "":
                if name in ("dp", "dq", "inverseQ"):
                    numbers[name] = 0
                    continue
                raise InvalidJitConfigError(f"{where} has no `{name}`")
            if not isinstance(value, str):
                raise InvalidJitConfigError(f"{where} field `{name}` is not a base64 string")
            try:
                raw = base64.b64decode(_pad(value.strip()), validate=True)
            except (binascii.Error, ValueError):
                raise InvalidJitConfigError(f"{where} field `{name}` is not valid base64") from None
            numbers[name] = int.from_bytes(raw, "big")
        return cls(
            modulus=numbers["modulus"],
            exponent=numbers["exponent"],
            d=numbers["d"],
            p=numbers["p"],
            q=numbers["q"],
            dp=numbers["dp"],
            dq=numbers["dq"],
            inverse_q=numbers["inverseQ"],
        )

    def to_json(self) -> dict[str, str]:
        """The JSON object .NET writes: fixed-width big-endian bytes, as `ExportParameters` gives them."""
        size = (self.modulus.bit_length() + 7) // 8
        half = (size + 1) // 2
        dp, dq, inverse_q = self._crt()

        def b64(number: int, width: int = 0) -> str:
            length = max(width, (number.bit_length() + 7) // 8, 1)
            return base64.b64encode(number.to_bytes(length, "big")).decode("ascii")

        return {
            "d": b64(self.d, size),
            "dp": b64(dp, half),
            "dq": b64(dq, half),
            "exponent": b64(self.exponent),
            "inverseQ": b64(inverse_q, half),
            "modulus": b64(self.modulus, size),
            "p": b64(self.p, half),
            "q": b64(self.q, half),
        }

    @classmethod
    def from_private_key(cls, key: RSAPrivateKey) -> RSAParameters:
        numbers = key.private_numbers()
        return cls(
            modulus=numbers.public_numbers.n,
            exponent=numbers.public_numbers.e,
            d=numbers.d,
            p=numbers.p,
            q=numbers.q,
            dp=numbers.dmp1,
            dq=numbers.dmq1,
            inverse_q=numbers.iqmp,
        )

    def private_key(self) -> RSAPrivateKey:
        """The `cryptography` key; `InvalidJitConfigError` when the numbers are not a consistent key."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        dp, dq, inverse_q = self._crt()
        try:
            return rsa.RSAPrivateNumbers(
                p=self.p,
                q=self.q,
                d=self.d,
                dmp1=dp,
                dmq1=dq,
                iqmp=inverse_q,
                public_numbers=rsa.RSAPublicNumbers(self.exponent, self.modulus),
            ).private_key()
        except (ValueError, TypeError, ArithmeticError):
            raise InvalidJitConfigError(
                "`.credentials_rsaparams` does not hold a valid RSA private key "
                "(its numbers are inconsistent or redacted)"
            ) from None

    def _crt(self) -> tuple[int, int, int]:
        from cryptography.hazmat.primitives.asymmetric import rsa

        dp, dq, inverse_q = self.dp, self.dq, self.inverse_q
        try:
            if not dp and self.p > 1:
                dp = rsa.rsa_crt_dmp1(self.d, self.p)
            if not dq and self.q > 1:
                dq = rsa.rsa_crt_dmq1(self.d, self.q)
            if not inverse_q and self.p > 1 and self.q > 1:
                inverse_q = rsa.rsa_crt_iqmp(self.p, self.q)
        except (ValueError, ArithmeticError):
            pass
        return dp, dq, inverse_q


def _pad(text: str) -> str:
    text = "".join(text.split()).replace("-", "+").replace("_", "/")
    return text + "=" * (-len(text) % 4)


def _oaep(hash_name: OaepHash) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    algorithm = hashes.SHA256() if hash_name == "sha256" else hashes.SHA1()  # noqa: S303 - the protocol's fallback
    return padding.OAEP(mgf=padding.MGF1(algorithm=algorithm), algorithm=algorithm, label=None)


def unwrap_session_key(
    private_key: RSAPrivateKey, wrapped: bytes, *, prefer: OaepHash = "sha256"
) -> tuple[bytes, OaepHash]:
    """The AES key of a v1 session from `encryptionKey.value` (already base64-decoded).

    Tries OAEP with `prefer` first, then the other hash (docs/protocol.md,
    "Broker (v2) and pipelines (v1)": SHA-256 works on
    github.com whatever `useFipsEncryption` says; SHA-1 is the code's non-FIPS choice).
    Returns the key and the hash that worked. Raises `InvalidResponseError`.
    """
    order: tuple[OaepHash, OaepHash] = ("sha256", "sha1") if prefer == "sha256" else ("sha1", "sha256")
    for hash_name in order:
        try:
            key = private_key.decrypt(wrapped, _oaep(hash_name))
        except ValueError:
            continue
        if len(key) not in _AES_KEY_SIZES:
            raise InvalidResponseError(
                f"the session encryption key is {len(key)} bytes long; an AES key has 16, 24 or 32"
            )
        return key, hash_name
    raise InvalidResponseError(
        "the session encryption key could not be decrypted with the runner's private key "
        "(RSA-OAEP with SHA-256 or SHA-1); the JIT config may belong to another runner"
    )


def wrap_session_key(public_key: RSAPublicKey, key: bytes, *, hash_name: OaepHash = "sha256") -> bytes:
    """RSA-OAEP-encrypt an AES session key for a runner, as the pipelines service does."""
    return public_key.encrypt(key, _oaep(hash_name))


def decrypt_message_body(key: bytes, iv: bytes, ciphertext: bytes) -> str:
    """Decrypt an AES-CBC/PKCS#7 message body to text, dropping a UTF-8 BOM. Raises `InvalidResponseError`."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(iv) != _AES_BLOCK:
        raise InvalidResponseError(f"the message IV is {len(iv)} bytes long; AES-CBC needs 16")
    if not ciphertext or len(ciphertext) % _AES_BLOCK:
        raise InvalidResponseError("the encrypted message body is not a whole number of AES blocks")
    try:
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    except ValueError:
        raise InvalidResponseError("the session encryption key is not a valid AES key") from None
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= _AES_BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise InvalidResponseError("the decrypted message body has bad padding (wrong session key?)")
    try:
        text = padded[:-pad].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidResponseError("the decrypted message body is not UTF-8 (wrong session key?)") from None
    return text.removeprefix(_UTF8_BOM)


def encrypt_message_body(key: bytes, iv: bytes, plaintext: str | bytes) -> bytes:
    """AES-CBC/PKCS#7-encrypt a message body, as the pipelines service does."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    pad = _AES_BLOCK - len(data) % _AES_BLOCK
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()
