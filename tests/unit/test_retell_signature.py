"""Retell signature: the published test vectors verify; any deviation is refused."""

from __future__ import annotations

import pytest

from shared.integrations.retell.signature import sign, verify

KEY = "key_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TS = 1751328000000
BODY = (
    b'{"name":"check_availability","args":{"date":"2025-07-01","service":"haircut"},'
    b'"call":{"call_id":"call_test_0001","agent_id":"agent_test_0001"}}'
)
HEADER = "v=1751328000000,d=fa1f2b59a0aaa228d6ada10ecff43370b1ff096c8deb2c37dd317a3006618342"


def test_vector_verifies() -> None:
    assert len(BODY) == 143
    assert sign(BODY, KEY, TS) == HEADER
    assert verify(BODY, KEY, HEADER, current_ms=TS)


def test_empty_body_vector() -> None:
    header = "v=1751328000000,d=441860204f76ac1b0fc7935d502dae2b4f6139f698bd71564cce9e0d01b32f0a"
    assert sign(b"", KEY, TS) == header
    assert verify(b"", KEY, header, current_ms=TS)


def test_sdk_vector() -> None:
    digest = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
    assert sign(b'{"event":"call_ended"}', "test-api-key", 1700000000000).endswith(digest)


@pytest.mark.parametrize("offset", [300_000, -300_000, 0])
def test_window_is_inclusive(offset: int) -> None:
    assert verify(BODY, KEY, HEADER, current_ms=TS + offset)


@pytest.mark.parametrize("offset", [300_001, -300_001, 3_600_000])
def test_stale_or_future_timestamp_is_refused(offset: int) -> None:
    assert not verify(BODY, KEY, HEADER, current_ms=TS + offset)


def test_one_changed_byte_is_refused() -> None:
    for i in (0, 50, 142):
        tampered = bytearray(BODY)
        tampered[i] ^= 0x01
        assert not verify(bytes(tampered), KEY, HEADER, current_ms=TS)
    assert not verify(BODY + b" ", KEY, HEADER, current_ms=TS)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        HEADER.upper(),
        HEADER.replace(",d=", ", d="),
        "v=1751328000,d=" + HEADER.split("d=")[1],
        "d=" + HEADER.split("d=")[1] + ",v=1751328000000",
        HEADER + "00",
        HEADER[:-1],
        "garbage " + HEADER,
    ],
)
def test_malformed_header_is_refused(header: str | None) -> None:
    assert not verify(BODY, KEY, header, current_ms=TS)


def test_wrong_key_is_refused() -> None:
    assert not verify(BODY, KEY + "x", HEADER, current_ms=TS)
