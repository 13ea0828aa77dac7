from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthgen.errors import ZoneError
from synthgen.zones import ZONE_MARKER, Zones


@pytest.fixture
def zones(tmp_path: Path) -> Zones:
    return Zones.from_roots(tmp_path / "real", tmp_path / "synthetic")


@pytest.mark.parametrize(
    ("real", "synthetic"),
    [("z", "z"), ("z", "z/synthetic"), ("z/real", "z")],
)
def test_overlapping_or_nested_roots_are_refused(tmp_path: Path, real: str, synthetic: str) -> None:
    with pytest.raises(ZoneError, match="overlap"):
        Zones.from_roots(tmp_path / real, tmp_path / synthetic)


def test_dotdot_escape_into_other_zone_is_refused(zones: Zones) -> None:
    with pytest.raises(ZoneError, match="outside the synthetic zone"):
        zones.synthetic.resolve("../real/leak.parquet")
    with pytest.raises(ZoneError, match="outside the real zone"):
        with zones.real.atomic_write("a/../../synthetic/x.parquet") as fh:
            fh.write(b"x")
    assert not (zones.synthetic.root / "x.parquet").exists()


def test_absolute_path_elsewhere_is_refused(zones: Zones, tmp_path: Path) -> None:
    with pytest.raises(ZoneError):
        zones.real.resolve(tmp_path / "elsewhere.parquet")


def test_symlink_escape_is_refused(zones: Zones) -> None:
    os.symlink(zones.real.root, zones.synthetic.root / "sneaky")
    with pytest.raises(ZoneError, match="outside the synthetic zone"):
        with zones.synthetic.atomic_write("sneaky/out.parquet") as fh:
            fh.write(b"synthetic bytes")
    assert [p for p in zones.real.root.iterdir() if p.name != ZONE_MARKER] == []


def test_atomic_write_crash_leaves_nothing_visible(zones: Zones) -> None:
    with pytest.raises(RuntimeError):
        with zones.real.atomic_write("d/file.bin") as fh:
            fh.write(b"half of the data")
            raise RuntimeError("simulated crash mid-write")
    d = zones.real.root / "d"
    assert not (d / "file.bin").exists()
    assert list(d.iterdir()) == []


def test_atomic_write_replaces_only_on_success(zones: Zones) -> None:
    with zones.real.atomic_write("f.txt", "w") as fh:
        fh.write("v1")
    with pytest.raises(KeyboardInterrupt):
        with zones.real.atomic_write("f.txt", "w") as fh:
            fh.write("v2-partial")
            raise KeyboardInterrupt
    assert (zones.real.root / "f.txt").read_text() == "v1"


def test_atomic_dir_is_all_or_nothing(zones: Zones) -> None:
    with pytest.raises(ValueError):
        with zones.synthetic.atomic_dir("model") as d:
            (d / "weights.pt").write_bytes(b"w")
            raise ValueError("crash")
    assert not (zones.synthetic.root / "model").exists()
    with zones.synthetic.atomic_dir("model") as d:
        (d / "weights.pt").write_bytes(b"w")
    assert (zones.synthetic.root / "model" / "weights.pt").read_bytes() == b"w"


def test_staging_commit_and_cleanup(zones: Zones) -> None:
    with zones.real.staging("s", suffix=".bin") as tmp:
        tmp.write_bytes(b"abc")
        zones.real.commit(tmp, "s/final.bin")
    assert (zones.real.root / "s" / "final.bin").read_bytes() == b"abc"
    assert [p.name for p in (zones.real.root / "s").iterdir()] == ["final.bin"]


def test_commit_refuses_staging_file_from_other_zone(zones: Zones) -> None:
    with zones.real.staging("s") as tmp:
        with pytest.raises(ZoneError):
            zones.synthetic.commit(tmp, "out.bin")


def test_open_for_writing_is_refused(zones: Zones) -> None:
    with pytest.raises(ZoneError, match="atomic_write"):
        zones.real.open("x", "wb")
