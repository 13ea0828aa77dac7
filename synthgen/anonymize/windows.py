"""Long documents analysed in overlapping windows.

spaCy refuses a text over ``nlp.max_length`` (1,000,000 characters; error E088) and its memory
grows with the text, so a long cell is analysed in windows of at most ``size`` characters.
Consecutive windows share up to ``size // 8`` characters (at most :data:`MAX_OVERLAP`): an
entity of up to half that length that crosses one window's end lies whole inside a window, so
it is found whole. The spans of all windows are shifted back to the document's offsets and
merged (:func:`synthgen.anonymize.text.merge_spans`), so a name cut at one window's edge and
found whole in the next is replaced whole.
"""

from __future__ import annotations

from collections.abc import Iterator

from presidio_analyzer import RecognizerResult

#: Most characters two consecutive windows share.
MAX_OVERLAP = 2_000


def windows(text: str, size: int) -> Iterator[tuple[int, str]]:
    """``(offset, piece)`` pairs covering ``text`` with pieces of at most ``size`` characters.

    A piece ends at whitespace in its second half when there is some; the next one starts
    ``overlap`` characters before that end (after a space in the overlap's first half, so that
    it starts on a word), where ``overlap = min(size // 8, MAX_OVERLAP)``.
    """
    if size < 8:
        raise ValueError("window size must be at least 8 characters")
    overlap = min(size // 8, MAX_OVERLAP)
    n = len(text)
    start = 0
    while True:
        end = min(start + size, n)
        if end < n:
            cut = max(text.rfind(" ", start + size // 2, end), text.rfind("\n", start + size // 2, end))
            if cut > start:
                end = cut
        yield start, text[start:end]
        if end >= n:
            return
        nxt = end - overlap
        space = max(text.rfind(" ", nxt, end - overlap // 2), text.rfind("\n", nxt, end - overlap // 2))
        start = space + 1 if space >= 0 else nxt


def shifted(results: list[RecognizerResult], offset: int) -> list[RecognizerResult]:
    """A window's analyzer results at the document's offsets."""
    if not offset:
        return results
    return [
        RecognizerResult(
            r.entity_type,
            r.start + offset,
            r.end + offset,
            r.score,
            r.analysis_explanation,
            r.recognition_metadata,
        )
        for r in results
    ]
