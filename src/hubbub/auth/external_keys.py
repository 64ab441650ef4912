"""The public keys of the application's own identity service (``--jwt-public-key``).

Read once at start, from PEM text, a PEM file or a JWKS file, so that a token is never the
reason to touch the disk or the network. Each key is bound to the one algorithm its type
allows (RSA: RS256, EC P-256: ES256, Ed25519: EdDSA): a token cannot choose how it is checked
beyond picking among the configured keys, which is what keeps ``alg: none`` and algorithm
confusion out. A value that yields no usable key is a :class:`KeyConfigError` (a
``ValueError``), which ``hubbub serve`` reports and exits 2 on, rather than starting a server
that would refuse every token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

PublicKeyType = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
ALGORITHMS = ("RS256", "ES256", "EdDSA")
RSA_MIN_BITS = 2048
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL | re.ASCII)
_MAX_FILE_BYTES = 1 << 20


class KeyConfigError(ValueError):
    """The configured key material is unusable; the message says why and what to give."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    algorithm: str
    """The only algorithm a token checked with this key may use."""
    key: PublicKeyType
    kid: str | None = None


@dataclass(frozen=True, slots=True)
class PublicKeys:
    keys: tuple[PublicKey, ...]

    def candidates(self, algorithm: str, kid: str | None) -> list[PublicKey]:
        """The keys a token signed with ``algorithm`` may be checked against. A token naming a
        ``kid`` that some key carries is checked against that key alone; a ``kid`` no key
        carries leaves only keys without one (PEM keys), so with a JWKS it finds nothing."""
        typed = [k for k in self.keys if k.algorithm == algorithm]
        if kid is None:
            return typed
        named = [k for k in typed if k.kid == kid]
        return named or [k for k in typed if k.kid is None]


def load_public_keys(value: str) -> PublicKeys:
    """``value``: PEM text (one or several keys or certificates), JWKS JSON text, or the path
    of a file holding either."""
    text = value.strip()
    if not text:
        raise KeyConfigError("--jwt-public-key is empty: give PEM text or a PEM or JWKS file path")
    source = "--jwt-public-key"
    if not text.startswith(("-----BEGIN", "{")):
        text, source = _read_file(text), text
    keys = _from_jwks(text, source) if text.lstrip().startswith("{") else _from_pem(text, source)
    return PublicKeys(tuple(keys))


def _read_file(path_text: str) -> str:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise KeyConfigError(
            "--jwt-public-key is neither PEM text (-----BEGIN PUBLIC KEY-----…) nor the path of "
            f"a PEM or JWKS file: no file at {path_text[:200]!r}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"cannot read --jwt-public-key file {path}: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise KeyConfigError(f"--jwt-public-key file {path} is over 1 MiB: not a key file")
    try:
        return data.decode().strip()
    except UnicodeDecodeError:
        raise KeyConfigError(
            f"--jwt-public-key file {path} is not text: give a PEM or JWKS file (DER is not read)"
        ) from None


def _from_pem(text: str, source: str) -> list[PublicKey]:
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise KeyConfigError(f"{source} holds no PEM block (-----BEGIN PUBLIC KEY-----…)")
    keys: list[PublicKey] = []
    for number, block in enumerate(blocks, start=1):
        label = block.group(1)
        where = f"{source}, PEM block {number} ({label})"
        if "PRIVATE" in label:
            raise KeyConfigError(
                f"{where} is a private key: give Hubbub only the public key "
                "(openssl pkey -in private.pem -pubout)"
            )
        data = block.group(0).encode()
        try:
            if label == "CERTIFICATE":
                loaded: object = x509.load_pem_x509_certificate(data).public_key()
            else:
                loaded = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise KeyConfigError(f"{where} cannot be read: {exc}") from None
        problem, key = _bound(loaded)
        if key is None:
            raise KeyConfigError(f"{where}: {problem}")
        keys.append(key)
    return keys


def _from_jwks(text: str, source: str) -> list[PublicKey]:
    """Keys that are not for verifying signatures, or of a kind Hubbub does not take, are
    passed over (a provider's JWKS often lists encryption keys too); none left is an error."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise KeyConfigError(f"{source} is not valid JSON: {exc}") from None
    entries = doc.get("keys") if isinstance(doc, dict) and "keys" in doc else [doc]
    if not isinstance(entries, list) or not entries:
        raise KeyConfigError(f'{source}: a JWKS is {{"keys": [<JWK>, …]}} with at least one key')
    keys: list[PublicKey] = []
    skipped: list[str] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise KeyConfigError(f"{source}: key {number} is not a JSON object")
        kid = entry.get("kid")
        name = f"key {number}" + (f" (kid {kid!r})" if isinstance(kid, str) else "")
        if "d" in entry or "p" in entry:
            raise KeyConfigError(
                f"{source}: {name} holds private key material; publish only the public key"
            )
        problem, key = _from_jwk(entry)
        if key is None:
            skipped.append(f"{name}: {problem}")
            continue
        keys.append(PublicKey(key.algorithm, key.key, kid if isinstance(kid, str) else None))
    if not keys:
        raise KeyConfigError(f"{source} has no usable key ({'; '.join(skipped)})")
    return keys


def _from_jwk(entry: dict[str, Any]) -> tuple[str, PublicKey | None]:
    use = entry.get("use")
    if use is not None and use != "sig":
        return f"'use' is {use!r}, not 'sig'", None
    ops = entry.get("key_ops")
    if isinstance(ops, list) and "verify" not in ops:
        return "'key_ops' does not include 'verify'", None
    kty = entry.get("kty")
    readers: dict[str, Callable[[dict[str, Any]], object]] = {
        "RSA": RSAAlgorithm.from_jwk,
        "EC": ECAlgorithm.from_jwk,
        "OKP": OKPAlgorithm.from_jwk,
    }
    reader = readers.get(kty) if isinstance(kty, str) else None
    if reader is None:
        return f"kty {kty!r} is not RSA, EC or OKP", None
    try:
        loaded = reader(entry)
    except (InvalidKeyError, ValueError, TypeError, KeyError) as exc:
        return f"cannot be read ({exc})", None
    problem, key = _bound(loaded)
    if key is None:
        return problem, None
    declared = entry.get("alg")
    if declared is not None and declared != key.algorithm:
        return f"'alg' is {declared!r}; this key type is taken for {key.algorithm} only", None
    return "", key


def _bound(loaded: object) -> tuple[str, PublicKey | None]:
    """The key with the one algorithm it may verify, or why it cannot be used."""
    if isinstance(loaded, rsa.RSAPublicKey):
        if loaded.key_size < RSA_MIN_BITS:
            return f"an RSA key of {loaded.key_size} bits is too weak (at least 2048)", None
        return "", PublicKey("RS256", loaded)
    if isinstance(loaded, ec.EllipticCurvePublicKey):
        if not isinstance(loaded.curve, ec.SECP256R1):
            return f"EC curve {loaded.curve.name} is not P-256 (ES256 only)", None
        return "", PublicKey("ES256", loaded)
    if isinstance(loaded, ed25519.Ed25519PublicKey):
        return "", PublicKey("EdDSA", loaded)
    kind = type(loaded).__name__.lstrip("_")
    return f"a {kind} is not an RSA, EC P-256 or Ed25519 public key", None


def describe(keys: PublicKeys) -> Iterator[str]:
    """One line per key, for the start-up log (no key material)."""
    for key in keys.keys:
        yield key.algorithm + (f" kid={key.kid}" if key.kid else "")
