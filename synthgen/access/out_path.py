"""Where ``synthgen read --out`` and ``synthgen report --out`` may put a plaintext copy, and how.

Both commands write decrypted (or restricted) bytes outside the platform's control, so the
destination is checked once, in :func:`check_out_path`, *before* the policy check, the key
unwrap or any decryption: a refused path leaves nothing behind, not even a temporary file.
The copy is then staged as a 0600 temporary file in the same folder and moved into place by
:func:`place_new_file`, which never replaces what is already there.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from synthgen.errors import SpecError

_FOLLOWS_ELSEWHERE = "it could send the data somewhere else: give the path of a new file"


def check_out_path(out: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """The absolute path of ``out`` (its folder resolved), if a new copy may be written there.

    Refused with :class:`SpecError` (exit 2): ``-`` (no copy goes to stdout), a name
    that is a folder (``.``, ``..``, ``dir/``), anything that already exists at the path (a regular
    file: never overwritten, as ``spec init``; a symbolic link, dangling or not: it could
    redirect the copy; a directory, FIFO, device or socket), and a folder that does not exist
    (created by nobody: a typo should not write plaintext in a new place).
    """
    raw = os.fspath(out)
    if raw == "-":
        raise SpecError(
            f"{option} -: a copy is never written to stdout (it would pass through pipes and "
            "terminals); give a file path"
        )
    path = Path(raw)
    if raw.endswith(os.sep) or path.name in ("", ".", ".."):
        raise SpecError(f"{option} {raw}: names a folder; give the path of a new file inside it")
    try:
        st: os.stat_result | None = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        raise SpecError(f"{option} {path}: cannot be checked ({exc.strerror})") from None
    if st is not None:
        raise SpecError(f"{option} {path} {_what_exists(st.st_mode)}")
    parent = path.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise SpecError(f"{option} {path}: {parent} is not a folder")
    if not parent.is_dir():
        raise SpecError(f"{option} {path}: the folder {parent} does not exist; create it first")
    return parent.resolve() / path.name


def _what_exists(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return f"is a symbolic link; {_FOLLOWS_ELSEWHERE}"
    if stat.S_ISREG(mode):
        return "already exists; it is never overwritten: choose another path or remove it"
    if stat.S_ISDIR(mode):
        return "is a folder; give the path of a new file inside it"
    if stat.S_ISFIFO(mode):
        return f"is a FIFO (named pipe); {_FOLLOWS_ELSEWHERE}"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"is a device; {_FOLLOWS_ELSEWHERE}"
    return f"is a special file; {_FOLLOWS_ELSEWHERE}"


def place_new_file(staged: Path, out: Path, *, option: str = "--out") -> None:
    """Move the finished ``staged`` file (same folder) to ``out``, which must still not exist.

    A hard link fails if anything appeared at ``out`` since :func:`check_out_path` (a file or a
    symbolic link planted meanwhile is neither replaced nor followed); where the file system has
    no hard links, a rename after a fresh check. ``staged`` is the caller's to remove.
    """
    try:
        os.link(staged, out, follow_symlinks=False)
        return
    except FileExistsError:
        raise SpecError(
            f"{option} {out} appeared while the copy was being written; nothing was overwritten"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
    check_out_path(out, option=option)
    os.replace(staged, out)
