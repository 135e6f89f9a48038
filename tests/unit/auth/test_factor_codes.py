"""TOTP and recovery codes, pure logic: RFC 6238 Appendix B vectors, ±1 step, code shapes;
ten recovery codes of 65 bits each, their forms, and their keyed hash."""

from __future__ import annotations

import base64
import math
import re

import pytest

from auth_server.factors import recovery_codes, totp

# RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890"; its 8-digit codes, of which an
# authenticator app shows the last 6 (RFC 4226 §5.3: the code is the value modulo 10^digits).
RFC_SEED = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("at", "eight_digits"), RFC_VECTORS)
def test_codes_match_rfc_6238_appendix_b(at: int, eight_digits: str) -> None:
    step = totp.current_step(at)
    assert totp.code_at(RFC_SEED, step) == eight_digits[-6:]
    assert totp.matching_step(RFC_SEED, eight_digits[-6:], at) == step


def test_one_step_either_way_and_no_more() -> None:
    now = 1_800_000_015.0
    step = totp.current_step(now)
    for offset in (-1, 0, 1):
        assert (
            totp.matching_step(RFC_SEED, totp.code_at(RFC_SEED, step + offset), now)
            == step + offset
        )
    for offset in (-3, -2, 2, 3):
        assert totp.matching_step(RFC_SEED, totp.code_at(RFC_SEED, step + offset), now) is None


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("123456", "123456"),
        ("123 456", "123456"),
        ("123-456", "123456"),
        (" 123456 ", "123456"),
        ("12345", None),
        ("1234567", None),
        ("12345a", None),
        ("", None),
        ("١٢٣٤٥٦", None),
    ],
)
def test_code_shapes(typed: str, normal: str | None) -> None:
    assert totp.normalize_code(typed) == normal


def test_seeds_are_160_bits_and_the_uri_is_the_key_uri_format() -> None:
    seed = totp.new_seed()
    assert len(base64.b32decode(seed)) == 20 and seed != totp.new_seed()
    uri = totp.provisioning_uri(seed, account="alice", issuer="notes-auth")
    assert uri == f"otpauth://totp/notes-auth:alice?secret={seed}&issuer=notes-auth"


def test_the_qr_code_is_inline_svg_with_an_accessible_name() -> None:
    svg = totp.qr_code_svg("otpauth://totp/notes-auth:alice?secret=ABC")
    assert svg.startswith("<svg") and "<title>" in svg
    assert "<script" not in svg and "http" not in svg.split("<title>")[0]


def test_ten_recovery_codes_of_at_least_sixty_bits() -> None:
    codes = recovery_codes.generate()
    assert len(codes) == 10 and len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{5}", code)
    bits = recovery_codes.LENGTH * math.log2(len(recovery_codes.ALPHABET))
    assert bits >= 60 and recovery_codes.BITS == 65


def test_recovery_codes_are_read_forgivingly_and_hashed_per_account() -> None:
    hasher = recovery_codes.RecoveryCodeHasher(b"k" * 32)
    code = "ABCD-EFGH-IJKLM"
    same = [code, "abcd efgh ijklm", "ABCDEFGHIJKLM", "abcd-efgh-ijk-lm"]
    assert len({hasher.hash("alice", form) for form in same}) == 1
    assert hasher.hash("alice", "0BCD-EFGH-1JKLM") == hasher.hash("alice", "OBCD-EFGH-IJKLM")
    assert hasher.hash("alice", code) != hasher.hash("bob", code)  # bound to the account
    other_key = recovery_codes.RecoveryCodeHasher(b"j" * 32)
    assert hasher.hash("alice", code) != other_key.hash("alice", code)  # keyed
    assert hasher.hash("alice", "ABCD-EFGH-IJKL") is None  # too short
    assert hasher.hash("alice", "ABCD-EFGH-IJKL9") is None  # not base32
