"""The synthgen envelope (format version 1): AES-256-GCM over fixed-size segments.

Layout (all integers big-endian; see docs/encryption-format.md)::

    magic          8   b"SGENC\\r\\n\\x1a"
    version        2   1
    suite          2   1 = HKDF-SHA256 + AES-256-GCM STREAM
    segment_size   4   plaintext bytes per segment (last one may be shorter, even empty)
    salt          32   HKDF salt, random per file
    nonce_prefix   7   random per file
    commitment    32   HKDF(data key, salt, "commit"): binds the data key to this file
    manifest_len   4
    manifest       N   canonical JSON (authenticated, not encrypted)
    segments          ciphertext_i || tag_i (16 bytes), i = 0 .. n-1

The header hash ``H = SHA-256(magic .. manifest)`` is the associated data of every
segment, and segment ``i`` uses nonce ``prefix || i (4 bytes) || last flag (1 byte)``
(the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár). So:

* an edited header or manifest changes ``H`` and every tag fails;
* a reordered or swapped segment is decrypted under the wrong counter and fails;
* a truncation at a segment boundary leaves a final segment whose flag says "not
  last" and fails; appended bytes form a segment after the last one and fail;
* segments or manifests moved between datasets fail (other key, other ``H``).

A segment's plaintext is returned only after AES-GCM has verified its tag (the
one-shot ``AESGCM.decrypt``); nothing is streamed out of an unverified segment.
Memory is bounded by two segments whatever the file size.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from synthgen.crypto.canonical import canonical_json
from synthgen.crypto.secret import SecretKey, random_bytes
from synthgen.errors import CryptoError

MAGIC = b"SGENC\r\n\x1a"
VERSION = 1
SUITE_AES256GCM_STREAM = 1
TAG_BYTES = 16
NONCE_PREFIX_BYTES = 7
SALT_BYTES = 32
COMMIT_BYTES = 32
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 1 << 10
MAX_SEGMENT_SIZE = 1 << 26  # caps what a hostile header can make a reader allocate
MAX_MANIFEST_BYTES = 1 << 24
_MAX_SEGMENTS = 1 << 32

_FIXED = struct.Struct(">8sHHI32s7s32sI")  # magic .. manifest_len
FIXED_HEADER_BYTES = _FIXED.size
_KDF_INFO = b"synthgen envelope v1 segment-key+commitment"


@dataclass(frozen=True)
class EnvelopeHeader:
    """A parsed header. ``manifest`` is *unverified* until a segment tag has checked ``header_hash``."""

    version: int
    suite: int
    segment_size: int
    salt: bytes
    nonce_prefix: bytes
    commitment: bytes
    manifest: dict[str, Any]
    header_hash: bytes
    header_len: int


@dataclass(frozen=True)
class EnvelopeInfo:
    """What encryption produced: enough to catalogue the file, nothing secret."""

    header_hash: str
    #: SHA-256 over the header and every segment tag: a cheap fingerprint of the whole
    #: ciphertext (any change to a segment changes its tag), computed without a second pass.
    digest: str
    segments: int
    plaintext_bytes: int
    ciphertext_bytes: int


def _derive(data_key: SecretKey, salt: bytes) -> tuple[AESGCM, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=_KDF_INFO).derive(data_key.reveal())
    return AESGCM(okm[:32]), okm[32:]


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= _MAX_SEGMENTS:
        raise CryptoError("file too large for one envelope (2^32 segments); raise the segment size")
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def _build_header(
    manifest: dict[str, Any], segment_size: int, salt: bytes, prefix: bytes, commitment: bytes
) -> bytes:
    body = canonical_json(manifest)
    if len(body) > MAX_MANIFEST_BYTES:
        raise CryptoError(f"manifest is {len(body)} bytes; the limit is {MAX_MANIFEST_BYTES}")
    fixed = _FIXED.pack(
        MAGIC, VERSION, SUITE_AES256GCM_STREAM, segment_size, salt, prefix, commitment, len(body)
    )
    return fixed + body


def _read_exact(src: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at end of input (pipes and raw files may return short reads)."""
    parts, got = [], 0
    while got < n:
        block = src.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _fill(src: IO[bytes], buf: bytearray) -> int:
    """Fill ``buf`` from ``src``; returns the byte count, short only at end of input.

    Reusing two preallocated buffers keeps memory flat and avoids a fresh allocation
    (and its page faults) per segment, which costs more than AES-GCM itself.
    """
    view, got = memoryview(buf), 0
    readinto = getattr(src, "readinto", None)
    while got < len(buf):
        if readinto is not None:
            n = readinto(view[got:])
        else:
            block = src.read(len(buf) - got)
            n = len(block) if block else 0
            view[got : got + n] = block or b""
        if not n:
            break
        got += n
    return got


def encrypt_stream(
    src: IO[bytes],
    dst: IO[bytes],
    *,
    data_key: SecretKey,
    manifest: dict[str, Any],
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> EnvelopeInfo:
    """Encrypt ``src`` into ``dst`` as one envelope whose header carries ``manifest``.

    ``manifest`` is authenticated (any edit makes decryption fail) but stored in the
    clear: put metadata in it, never key material or real rows. Memory use is two
    segments.
    """
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise CryptoError(f"segment size {segment_size} outside [{MIN_SEGMENT_SIZE}, {MAX_SEGMENT_SIZE}]")
    salt, prefix = random_bytes(SALT_BYTES), random_bytes(NONCE_PREFIX_BYTES)
    aead, commitment = _derive(data_key, salt)
    header = _build_header(manifest, segment_size, salt, prefix, commitment)
    aad = hashlib.sha256(header).digest()
    fingerprint = hashlib.sha256(header)
    dst.write(header)
    written = len(header)
    counter = plain = 0
    bufs = (bytearray(segment_size), bytearray(segment_size))
    # Two ciphertext buffers: a writer thread writes one while the next is encrypted, so the
    # write (a syscall, GIL released) overlaps AES-GCM instead of following it. At most one
    # write is in flight, so a buffer is reused only after its previous write returned.
    sealed = (bytearray(segment_size + TAG_BYTES), bytearray(segment_size + TAG_BYTES))
    cur, n_cur = 0, _fill(src, bufs[0])
    pending: Future[Any] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="envelope-write") as writer:
        try:
            while True:
                # Look one segment ahead: the last segment must be flagged as such when encrypted.
                n_next = _fill(src, bufs[1 - cur]) if n_cur == segment_size else 0
                last = n_next == 0
                out = memoryview(sealed[counter % 2])[: n_cur + TAG_BYTES]
                aead.encrypt_into(_nonce(prefix, counter, last), memoryview(bufs[cur])[:n_cur], aad, out)
                if pending is not None:
                    pending.result()
                pending = writer.submit(dst.write, out)
                fingerprint.update(out[-TAG_BYTES:])
                written += len(out)
                plain += n_cur
                counter += 1
                if last:
                    break
                cur, n_cur = 1 - cur, n_next
        finally:
            if pending is not None:
                pending.result()
    return EnvelopeInfo(
        header_hash=aad.hex(),
        digest=fingerprint.hexdigest(),
        segments=counter,
        plaintext_bytes=plain,
        ciphertext_bytes=written,
    )


def read_header(src: IO[bytes]) -> EnvelopeHeader:
    """Parse the header at the current position. The manifest is NOT yet verified."""
    fixed = _read_exact(src, FIXED_HEADER_BYTES)
    if len(fixed) < FIXED_HEADER_BYTES or not fixed.startswith(MAGIC):
        raise CryptoError("not a synthgen envelope (bad magic or truncated header)")
    _, version, suite, seg, salt, prefix, commitment, mlen = _FIXED.unpack(fixed)
    if version != VERSION:
        raise CryptoError(
            f"envelope format version {version} is not supported (this synthgen reads {VERSION})"
        )
    if suite != SUITE_AES256GCM_STREAM:
        raise CryptoError(f"envelope cipher suite {suite} is not supported")
    if not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE or mlen > MAX_MANIFEST_BYTES:
        raise CryptoError("envelope header is corrupted (segment size or manifest length out of range)")
    body = _read_exact(src, mlen)
    if len(body) != mlen:
        raise CryptoError("envelope is truncated inside its manifest")
    try:
        manifest = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CryptoError("envelope manifest is corrupted (not JSON)") from None
    if not isinstance(manifest, dict):
        raise CryptoError("envelope manifest is corrupted (not a JSON object)")
    return EnvelopeHeader(
        version=version,
        suite=suite,
        segment_size=seg,
        salt=salt,
        nonce_prefix=prefix,
        commitment=commitment,
        manifest=manifest,
        header_hash=hashlib.sha256(fixed + body).digest(),
        header_len=len(fixed) + len(body),
    )


def check_key(header: EnvelopeHeader, data_key: SecretKey) -> AESGCM:
    """The segment cipher for ``data_key``, after checking the key commitment.

    AES-GCM alone is not key-committing; the commitment makes "wrong key" a clear,
    early error and rules out a keyring entry for one file opening another.
    """
    aead, commitment = _derive(data_key, header.salt)
    if not hmac.compare_digest(commitment, header.commitment):
        raise CryptoError(
            "the data key does not open this envelope (wrong or substituted key, or an edited header)"
        )
    return aead


def _segments(src: IO[bytes], header: EnvelopeHeader, aead: AESGCM) -> Iterator[memoryview]:
    """Verified plaintext of each segment, as a view into a reused buffer (valid until the next step).

    ``decrypt_into`` writes into our private buffer and returns only once the tag
    verified; on failure the buffer (holding unverified bytes) is wiped and never shown.
    """
    aad = header.header_hash
    chunk = header.segment_size + TAG_BYTES
    bufs = (bytearray(chunk), bytearray(chunk))
    plain = bytearray(header.segment_size)
    counter = 0
    cur, n_cur = 0, _fill(src, bufs[0])
    if n_cur == 0:
        raise CryptoError("envelope is truncated: no segments")
    while True:
        # Look ahead one segment: a segment is the last one exactly when nothing follows it.
        n_next = _fill(src, bufs[1 - cur]) if n_cur == chunk else 0
        last = n_next == 0
        size = n_cur - TAG_BYTES
        try:
            if size < 0:
                raise InvalidTag
            aead.decrypt_into(
                _nonce(header.nonce_prefix, counter, last),
                memoryview(bufs[cur])[:n_cur],
                aad,
                memoryview(plain)[:size],
            )
        except InvalidTag:
            plain[:] = bytes(len(plain))
            raise CryptoError(
                f"envelope failed verification at segment {counter}: the file was modified, "
                "truncated or reordered; nothing from that segment on was released"
            ) from None
        yield memoryview(plain)[:size]
        counter += 1
        if last:
            return
        cur, n_cur = 1 - cur, n_next


def iter_decrypt(src: IO[bytes], *, data_key: SecretKey) -> Iterator[bytes]:
    """Yield verified plaintext segments. Each is released only after its tag checks.

    A truncated file is detected only at its end, so a caller that must not act on a
    partial stream writes to a temporary file and keeps it only once the iteration
    finished without error (as :func:`decrypt_to_path` does).
    """
    header = read_header(src)
    aead = check_key(header, data_key)
    for view in _segments(src, header, aead):
        yield bytes(view)


def decrypt_stream(src: IO[bytes], dst: IO[bytes], *, data_key: SecretKey) -> dict[str, Any]:
    """Decrypt ``src`` into ``dst``; return the manifest, now verified. Raises :class:`CryptoError`.

    ``dst`` receives only verified segments, but if a later segment fails it holds a
    prefix of the plaintext: write to a temporary file and discard it on error.
    """
    header = read_header(src)
    aead = check_key(header, data_key)
    for block in _segments(src, header, aead):
        dst.write(block)
    # Every segment verified under H = hash(header), so this manifest is the authenticated one.
    return header.manifest


def verify_stream(src: IO[bytes], *, data_key: SecretKey) -> int:
    """Check every segment without keeping plaintext. Returns the plaintext size."""
    header = read_header(src)
    return sum(len(view) for view in _segments(src, header, check_key(header, data_key)))
