"""An isolated synthgen home with the shipped policy, local KEKs for every role and a small
staged Parquet file, so each access test starts from a published-ready state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from synthgen.access import init_keys
from synthgen.catalog import Catalog
from synthgen.crypto import LocalKeyProvider
from synthgen.policy import Policy
from synthgen.zones import Zones

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    home: Path
    catalog: Catalog
    zones: Zones
    policy: Policy
    provider: LocalKeyProvider
    staging: Path

    def frame(self, n: int = 200) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "age": [20 + i % 50 for i in range(n)],
                "income": [float(i) * 1.5 for i in range(n)],
                "job": [["clerk", "nurse", "welder"][i % 3] for i in range(n)],
            }
        )

    def stage(self, name: str = "staged.parquet", n: int = 200) -> Path:
        path = self.staging / name
        self.frame(n).write_parquet(path)
        return path

    def publish(self, name: str = "adult-synthetic", **kw: object):  # type: ignore[no-untyped-def]
        from synthgen.access import publish_dataset

        args: dict = dict(
            name=name,
            manifest={"privacy": {"epsilon": 1.0, "delta": 1e-6}, "source": "adult"},
            dp=True,
            classification="shareable",
            roles=["analyst", "ml-engineer", "data-steward"],
            tags={"project": "demo"},
            parents=[],
            catalog=self.catalog,
            zones=self.zones,
            user="synthgen-pipeline",
        )
        args.update(kw)
        if "plaintext_parquet" not in args:
            args["plaintext_parquet"] = self.stage(f"{name}.parquet")
        return publish_dataset(**args)


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for var in list(os.environ):
        if var.startswith("SYNTHGEN_KEK_"):
            monkeypatch.delenv(var)
    for var in ("SYNTHGEN_KEY_PROVIDER", "SYNTHGEN_KEYS_DIR", "SYNTHGEN_AUDIT_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SYNTHGEN_POLICY_DIR", str(REPO / "policies"))
    catalog = Catalog.from_env()
    zones = Zones.from_env()
    policy = Policy.load()
    provider = LocalKeyProvider(home / "keys")
    init_keys(user="alice", policy=policy, provider=provider, catalog=catalog)
    staging = home / "staging"
    staging.mkdir()
    yield Env(home, catalog, zones, policy, provider, staging)
    catalog.dispose()
