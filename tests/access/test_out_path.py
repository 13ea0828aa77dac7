"""``synthgen read NAME --out PATH`` and ``synthgen report NAME --out PATH`` write only a new regular
file in an existing folder. Every other destination is refused with exit 2 and one line, before
the policy check: nothing is written, no temporary plaintext is left, no access is audited.
Through the installed console script."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synthgen.access.out_path import place_new_file
from synthgen.catalog import Dataset
from synthgen.errors import SpecError

from .conftest import Env

REPORT_HTML = "<html>restricted</html>"


@pytest.fixture
def published(env: Env) -> Env:
    env.publish()
    with env.zones.real.atomic_write("reports/adult/r1/report.html", mode="w") as fh:
        fh.write(REPORT_HTML)
    env.catalog.add_dataset(
        Dataset(
            id="report-1",
            name="adult",
            zone="real",
            kind="report",
            format="html",
            path=str(env.zones.real.resolve("reports/adult/r1/report.html")),
            content_hash="h",
            classification="restricted",
            dp=False,
            created_by="t",
        )
    )
    return env


COMMANDS = {
    "read": ["read", "adult-synthetic", "--user", "alice"],
    "report": ["report", "adult", "--user", "alice"],
}


def _device(where: Path) -> Path:
    """A character device: a fresh /dev/null node in ``where`` where we may make one, else /dev/null."""
    node = where / "null-device"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return Path("/dev/null")
    return node


def _bad_path(kind: str, out: Path) -> tuple[str, str, Callable[[], None]]:
    """(--out argument, expected words, check that it was left alone) for one kind of bad path."""
    if kind == "stdout":
        return "-", "stdout", lambda: None
    if kind == "symlink":
        target = out / "elsewhere.bin"
        link = out / "link.parquet"
        link.symlink_to(target)  # dangling: the copy would land at the target
        return str(link), "symbolic link", lambda: assert_link(link, target)
    if kind == "symlink-to-file":
        target = out / "kept.txt"
        target.write_text("mine")
        link = out / "link.parquet"
        link.symlink_to(target)
        return str(link), "symbolic link", lambda: assert_link(link, target, "mine")
    if kind == "directory":
        d = out / "adir"
        d.mkdir()
        return str(d), "folder", lambda: assert_true(d.is_dir() and not any(d.iterdir()))
    if kind == "trailing-slash":
        return str(out / "newdir") + "/", "folder", lambda: assert_true(not (out / "newdir").exists())
    if kind == "fifo":
        fifo = out / "pipe"
        os.mkfifo(fifo)
        return str(fifo), "FIFO", lambda: assert_true(stat.S_ISFIFO(os.lstat(fifo).st_mode))
    if kind == "device":
        dev = _device(out)
        return str(dev), "device", lambda: assert_true(stat.S_ISCHR(os.lstat(dev).st_mode))
    if kind == "missing-parent":
        target = out / "no" / "such" / "x.parquet"
        return str(target), "does not exist", lambda: assert_true(not (out / "no").exists())
    if kind == "existing-file":
        f = out / "old.parquet"
        f.write_text("previous contents")
        return str(f), "already exists", lambda: assert_true(f.read_text() == "previous contents")
    raise AssertionError(kind)


def assert_true(ok: bool) -> None:
    assert ok


def assert_link(link: Path, target: Path, content: str | None = None) -> None:
    assert link.is_symlink() and os.readlink(link) == str(target)
    if content is None:
        assert not target.exists()
    else:
        assert target.read_text() == content


KINDS = [
    "stdout",
    "symlink",
    "symlink-to-file",
    "directory",
    "trailing-slash",
    "fifo",
    "device",
    "missing-parent",
    "existing-file",
]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", KINDS)
def test_bad_out_path_is_refused_before_anything_is_decrypted_or_written(
    published: Env, synthgen_cli: Callable[..., Any], tmp_path: Path, command: str, kind: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    arg, words, left_alone = _bad_path(kind, out)
    audit = published.home / "audit" / "audit.jsonl"
    entries = audit.read_text().count("\n")
    before = sorted(p.name for p in out.iterdir())
    r = synthgen_cli([*COMMANDS[command], "--out", arg], cwd=out)
    assert r.code == 2, (kind, r.code, r.out, r.err)
    assert r.err.strip().count("\n") == 0 and words in r.err and "Traceback" not in r.err, r.err
    left_alone()
    assert sorted(p.name for p in out.iterdir()) == before  # no '-' file, no .tmp-* plaintext
    assert not list(published.home.rglob(".tmp-*"))
    assert audit.read_text().count("\n") == entries  # refused before the policy check: no access


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_new_file_in_an_existing_folder_is_written_0600(
    published: Env, synthgen_cli: Callable[..., Any], tmp_path: Path, command: str
) -> None:
    out = tmp_path / "copy.bin"
    r = synthgen_cli([*COMMANDS[command], "--out", str(out)])
    assert r.code == 0, r.err
    assert out.is_file() and stat.S_IMODE(out.stat().st_mode) == 0o600
    if command == "report":
        assert out.read_text() == REPORT_HTML
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")) == []
    r = synthgen_cli([*COMMANDS[command], "--out", str(out)])  # the same path again: refused
    assert r.code == 2 and "already exists" in r.err, r.err


def test_a_file_planted_at_the_destination_while_writing_is_not_replaced(tmp_path: Path) -> None:
    staged = tmp_path / ".tmp-out-1"
    staged.write_text("decrypted")
    planted = tmp_path / "out.parquet"
    planted.symlink_to(tmp_path / "attacker-target")
    with pytest.raises(SpecError, match="appeared while the copy was being written"):
        place_new_file(staged, planted)
    assert planted.is_symlink() and not (tmp_path / "attacker-target").exists()
