"""Tampering with an envelope is always detected, and nothing unverified is released."""

from __future__ import annotations

import io
import os
import struct

import pytest

from synthgen.crypto import SecretKey, decrypt_stream, encrypt_stream, iter_decrypt, read_header
from synthgen.crypto.envelope import FIXED_HEADER_BYTES, TAG_BYTES
from synthgen.errors import CryptoError

SEG = 1024


def _seal(data: bytes, key: SecretKey, manifest: dict | None = None) -> bytes:
    out = io.BytesIO()
    encrypt_stream(
        io.BytesIO(data), out, data_key=key, manifest=manifest or {"dataset_id": "a"}, segment_size=SEG
    )
    return out.getvalue()


def _open(blob: bytes, key: SecretKey) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, data_key=key)
    return out.getvalue()


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate(label="test")


@pytest.fixture
def plain() -> bytes:
    return os.urandom(SEG * 3 + 100)  # four segments, the last one short


def _layout(blob: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Header length and (start, end) of each sealed segment."""
    header_len = read_header(io.BytesIO(blob)).header_len
    body, step = len(blob) - header_len, SEG + TAG_BYTES
    return header_len, [(header_len + i, header_len + min(i + step, body)) for i in range(0, body, step)]


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 100])
def test_round_trip_at_segment_boundaries(key: SecretKey, size: int) -> None:
    data = os.urandom(size)
    assert _open(_seal(data, key), key) == data


def test_manifest_is_returned_only_after_verification(key: SecretKey, plain: bytes) -> None:
    out = io.BytesIO()
    manifest = decrypt_stream(
        io.BytesIO(_seal(plain, key, {"dataset_id": "x", "rows": 3})), out, data_key=key
    )
    assert manifest == {"dataset_id": "x", "rows": 3}


@pytest.mark.parametrize("offset", [0, 9, 12, 20, 50, 84, FIXED_HEADER_BYTES - 1])
def test_flipping_a_header_byte_is_detected(key: SecretKey, plain: bytes, offset: int) -> None:
    blob = bytearray(_seal(plain, key))
    blob[offset] ^= 0x01
    with pytest.raises(CryptoError):
        _open(bytes(blob), key)


def test_flipping_a_manifest_byte_is_detected(key: SecretKey, plain: bytes) -> None:
    blob = _seal(plain, key, {"dataset_id": "a", "classification": "restricted"})
    edited = blob.replace(b'"restricted"', b'"shareable!"')  # same length: only the AAD changes
    assert len(edited) == len(blob) and edited != blob
    with pytest.raises(CryptoError, match="segment 0"):
        _open(edited, key)


def test_flipping_a_byte_in_each_segment_and_each_tag_is_detected(key: SecretKey, plain: bytes) -> None:
    blob = _seal(plain, key)
    _, segments = _layout(blob)
    assert len(segments) == 4
    for i, (start, end) in enumerate(segments):
        for pos in (start, (start + end) // 2, end - TAG_BYTES, end - 1):  # ciphertext and tag bytes
            edited = bytearray(blob)
            edited[pos] ^= 0x80
            with pytest.raises(CryptoError, match=f"segment {i}"):
                _open(bytes(edited), key)


def test_truncation_is_detected_at_every_boundary_and_inside_segments(key: SecretKey, plain: bytes) -> None:
    blob = _seal(plain, key)
    header_len, segments = _layout(blob)
    cuts = (
        {header_len, header_len - 1, 3, len(blob) - 1}
        | {end for _, end in segments[:-1]}
        | {s + 7 for s, _ in segments}
    )
    for cut in sorted(cuts):
        with pytest.raises(CryptoError):
            _open(blob[:cut], key)


def test_appended_bytes_are_detected(key: SecretKey, plain: bytes) -> None:
    blob = _seal(plain, key)
    for extra in (b"\x00", os.urandom(SEG + TAG_BYTES)):
        with pytest.raises(CryptoError):
            _open(blob + extra, key)


def test_reordered_segments_are_detected(key: SecretKey, plain: bytes) -> None:
    blob = _seal(plain, key)
    header_len, segments = _layout(blob)
    parts = [blob[s:e] for s, e in segments]
    swapped = blob[:header_len] + parts[1] + parts[0] + parts[2] + parts[3]
    with pytest.raises(CryptoError, match="segment 0"):
        _open(swapped, key)
    dropped_middle = blob[:header_len] + parts[0] + parts[2] + parts[3]
    with pytest.raises(CryptoError):
        _open(dropped_middle, key)


def test_segments_swapped_between_two_files_under_one_key_are_detected(key: SecretKey, plain: bytes) -> None:
    a, b = _seal(plain, key), _seal(plain, key)  # same key, same data: only salt / prefix differ
    ha, sa = _layout(a)
    _, sb = _layout(b)
    mixed = a[:ha] + b[sb[0][0] : sb[0][1]] + a[sa[1][0] :]
    with pytest.raises(CryptoError):
        _open(mixed, key)


def test_swapping_manifests_between_datasets_is_detected(key: SecretKey, plain: bytes) -> None:
    other = SecretKey.generate(label="other")
    a = _seal(plain, key, {"dataset_id": "A"})
    b = _seal(plain, other, {"dataset_id": "B"})
    ha, hb = read_header(io.BytesIO(a)).header_len, read_header(io.BytesIO(b)).header_len
    for frankenstein, k in ((b[:hb] + a[ha:], key), (b[:hb] + a[ha:], other), (a[:ha] + b[hb:], key)):
        with pytest.raises(CryptoError):
            _open(frankenstein, k)
    # Same key for both datasets (never done, but the header hash still separates them).
    a2, b2 = _seal(plain, key, {"dataset_id": "A"}), _seal(plain, key, {"dataset_id": "B"})
    ha2, hb2 = read_header(io.BytesIO(a2)).header_len, read_header(io.BytesIO(b2)).header_len
    with pytest.raises(CryptoError):
        _open(b2[:hb2] + a2[ha2:], key)


def test_wrong_key_is_rejected_before_any_segment(key: SecretKey, plain: bytes) -> None:
    blob = _seal(plain, key)
    it = iter_decrypt(io.BytesIO(blob), data_key=SecretKey.generate())
    with pytest.raises(CryptoError, match="does not open this envelope"):
        next(it)


def test_no_plaintext_is_released_from_a_tampered_segment(key: SecretKey, plain: bytes) -> None:
    blob = bytearray(_seal(plain, key))
    _, segments = _layout(bytes(blob))
    blob[segments[2][0] + 5] ^= 1
    released = []
    with pytest.raises(CryptoError, match="segment 2"):
        for chunk in iter_decrypt(io.BytesIO(bytes(blob)), data_key=key):
            released.append(chunk)
    assert b"".join(released) == plain[: 2 * SEG]  # exactly the verified segments, none of segment 2


def test_hostile_header_cannot_make_the_reader_allocate_huge_segments(key: SecretKey, plain: bytes) -> None:
    blob = bytearray(_seal(plain, key))
    struct.pack_into(">I", blob, 12, 1 << 31)  # segment_size field
    with pytest.raises(CryptoError, match="out of range"):
        _open(bytes(blob), key)


def test_not_an_envelope_and_unsupported_version_are_clear_errors(key: SecretKey, plain: bytes) -> None:
    with pytest.raises(CryptoError, match="not a synthgen envelope"):
        _open(b"PAR1" + plain, key)
    blob = bytearray(_seal(plain, key))
    struct.pack_into(">H", blob, 8, 2)
    with pytest.raises(CryptoError, match="version 2"):
        _open(bytes(blob), key)


def test_secret_key_never_shows_its_bytes(key: SecretKey) -> None:
    import pickle

    raw = key.reveal()
    for text in (repr(key), str(key), f"{key}", f"{key!r}"):
        assert raw.hex() not in text and "redacted" in text
    with pytest.raises(TypeError):
        pickle.dumps(key)


class _Trickle(io.RawIOBase):
    """A source that returns at most 100 bytes per call, like a pipe or socket."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        chunk = self._src.read(min(len(b), 100))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_short_reads_from_pipes_neither_truncate_nor_break_the_stream(key: SecretKey, plain: bytes) -> None:
    sealed = io.BytesIO()
    info = encrypt_stream(_Trickle(plain), sealed, data_key=key, manifest={}, segment_size=SEG)
    assert info.plaintext_bytes == len(plain) and info.segments == 4
    out = io.BytesIO()
    decrypt_stream(_Trickle(sealed.getvalue()), out, data_key=key)
    assert out.getvalue() == plain
