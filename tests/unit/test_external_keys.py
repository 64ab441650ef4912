"""--jwt-public-key's loader: which key material is taken, bound to which one algorithm, which is
refused with a message an operator can act on, and which keys a token's ``alg``/``kid`` select."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from hubbub.auth.external_keys import KeyConfigError, load_public_keys
from hubbub.auth.external_users import clean_name

RSA_KEY = rsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def pem(public: Any) -> str:
    data: bytes = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data.decode()


def jwk(reader: Any, public: Any, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = reader.to_jwk(public, as_dict=True)
    return {**out, **extra}


def test_concatenated_pem_binds_each_key_to_its_one_algorithm() -> None:
    text = pem(RSA_KEY.public_key()) + "\n" + pem(EC_KEY.public_key()) + pem(ED_KEY.public_key())
    keys = load_public_keys(text)
    assert [(k.algorithm, k.kid) for k in keys.keys] == [
        ("RS256", None),
        ("ES256", None),
        ("EdDSA", None),
    ]


def test_a_certificate_gives_its_public_key(tmp_path: Path) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(EC_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(EC_KEY, hashes.SHA256())
    )
    path = tmp_path / "idp.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    [key] = load_public_keys(str(path)).keys
    assert key.algorithm == "ES256"
    assert key.key.public_numbers() == EC_KEY.public_key().public_numbers()  # type: ignore[union-attr]


def test_jwks_keeps_signing_keys_and_passes_over_the_rest(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    doc = {
        "keys": [
            jwk(RSAAlgorithm, RSA_KEY.public_key(), kid="r1", use="sig", alg="RS256"),
            jwk(RSAAlgorithm, RSA_KEY.public_key(), kid="enc", use="enc"),
            jwk(RSAAlgorithm, RSA_KEY.public_key(), kid="r512", alg="RS512"),
            jwk(ECAlgorithm, p384, kid="p384"),
            jwk(ECAlgorithm, EC_KEY.public_key(), kid="e1"),
            jwk(OKPAlgorithm, ED_KEY.public_key(), kid="d1", key_ops=["verify"]),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(doc))
    for value in (str(path), json.dumps(doc)):
        keys = load_public_keys(value)
        assert [(k.algorithm, k.kid) for k in keys.keys] == [
            ("RS256", "r1"),
            ("ES256", "e1"),
            ("EdDSA", "d1"),
        ]


def test_kid_and_alg_select_keys() -> None:
    other_rsa = rsa.generate_private_key(65537, 2048).public_key()
    jwks = load_public_keys(
        json.dumps(
            {
                "keys": [
                    jwk(RSAAlgorithm, RSA_KEY.public_key(), kid="a"),
                    jwk(RSAAlgorithm, other_rsa, kid="b"),
                    jwk(ECAlgorithm, EC_KEY.public_key(), kid="c"),
                ]
            }
        )
    )
    assert [k.kid for k in jwks.candidates("RS256", "b")] == ["b"]
    assert [k.kid for k in jwks.candidates("RS256", None)] == ["a", "b"]
    assert jwks.candidates("RS256", "unknown") == []
    assert jwks.candidates("RS256", "c") == []  # c is an EC key: it cannot check RS256
    assert jwks.candidates("HS256", None) == []
    assert jwks.candidates("none", None) == []
    pems = load_public_keys(pem(RSA_KEY.public_key()) + pem(other_rsa))
    assert len(pems.candidates("RS256", "whatever")) == 2  # PEM keys carry no kid
    assert pems.candidates("ES256", None) == []


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/no/such/file.pem", "no file at"),
        ("garbage", "no file at"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "cannot be read"),
        ("-----BEGIN PUBLIC KEY-----\nno end", "no PEM block"),
        (pem(rsa.generate_private_key(65537, 1024).public_key()), "too weak"),
        (pem(ec.generate_private_key(ec.SECP384R1()).public_key()), "not P-256"),
        (pem(ed448.Ed448PrivateKey.generate().public_key()), "not an RSA, EC P-256 or Ed25519"),
        (
            RSA_KEY.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ).decode(),
            "private key",
        ),
        ('{"keys": []}', "at least one key"),
        ('{"keys": [', "not valid JSON"),
        ('{"keys": ["x"]}', "not a JSON object"),
        (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "no usable key"),
        (json.dumps(RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True)), "private key material"),
    ],
)
def test_unusable_values_are_refused_with_a_reason(value: str, said: str) -> None:
    with pytest.raises(KeyConfigError) as raised:
        load_public_keys(value)
    assert said in str(raised.value)
    assert isinstance(raised.value, ValueError)  # what `hubbub serve` turns into exit 2
    assert "PRIVATE KEY-----" not in str(raised.value)


def test_binary_and_huge_files_are_refused(tmp_path: Path) -> None:
    der = tmp_path / "key.der"
    der.write_bytes(
        RSA_KEY.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyConfigError, match="not text"):
        load_public_keys(str(der))
    huge = tmp_path / "huge.pem"
    huge.write_text("x" * (2 << 20))
    with pytest.raises(KeyConfigError, match="over 1 MiB"):
        load_public_keys(str(huge))


def test_name_claims_that_cannot_be_shown_are_ignored() -> None:
    assert clean_name("  Ada Lovelace ") == "Ada Lovelace"
    assert clean_name("Ａｄａ") == "Ada"  # NFKC
    assert clean_name("x" * 100) == "x" * 64
    for bad in (None, 42, "", "   ", "\u202eevil", "a\x00b", "\u200b\u200b"):
        assert clean_name(bad) is None, bad
