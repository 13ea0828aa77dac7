"""One PostgreSQL table spelled two ways is one budget (red-team: `localhost` then `127.0.0.1`
with a `public.` prefix spent the full epsilon twice), through the installed ``synthgen`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SYNTHGEN = str(Path(sys.executable).with_name("synthgen"))
REPO = Path(__file__).resolve().parents[2]


def _spec(home: Path, name: str, url: str, table: str) -> str:
    path = home / f"{name}.yaml"
    path.write_text(
        f"""
name: {name}
source: {{kind: sql, url: "{url}", table: "{table}"}}
columns:
  age: {{type: numeric, bounds: [0, 100]}}
  ward: {{type: categorical, categories: [a, b, c]}}
anonymize: {{enabled: false}}
privacy: {{epsilon: 6}}
model: {{kind: dp_tvae, epochs: 4, batch_size: 64}}
evaluate: {{enabled: false}}
"""
    )
    return str(path)


def _sg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNTHGEN, *args], env=env, capture_output=True, text=True, timeout=600, cwd=env["SYNTHGEN_HOME"]
    )


@pytest.mark.postgres
def test_a_table_spent_on_localhost_is_capped_when_read_as_public_table_on_127_0_0_1(
    tmp_path: Path, pg_database: str
) -> None:
    table = f"patients_{uuid.uuid4().hex[:6]}"
    engine = create_engine(pg_database)
    with engine.begin() as c:
        c.execute(text(f"create table {table} (age int, ward text)"))
        c.execute(
            text(
                f"insert into {table} select 18 + g % 70, (array['a','b','c'])[1 + g % 3] "
                "from generate_series(1, 1500) g"
            )
        )
    engine.dispose()
    db = make_url(pg_database)
    port = db.port or 5432
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNTHGEN_", "PG"))}
    env |= {
        "SYNTHGEN_HOME": str(home),
        "SYNTHGEN_POLICY_DIR": str(REPO / "policies"),
        "SYNTHGEN_PIPELINE_SECRET": "sql-identity-secret-0123456789",
        "SYNTHGEN_CATALOG_URL": f"sqlite:///{home / 'catalog.db'}",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    first = _spec(home, "by-name", f"postgresql://{db.username}@localhost/{db.database}", table)
    second = _spec(
        home,
        "by-address",
        f"postgresql+psycopg://{db.username}@127.0.0.1:{port}/{db.database}",
        f"public.{table}",
    )
    key = f"sql:table {table} at postgresql://localhost:{port}/{db.database}"

    for spec in (first, second):  # both spellings read the same rows
        r = _sg(env, "anonymize", spec)
        assert r.returncode == 0, r.stderr
    r = _sg(env, "train", first)
    assert r.returncode == 0, r.stderr
    shown = _sg(env, "budget", "show", second, "--json")
    assert shown.returncode == 0, shown.stderr
    standing = json.loads(shown.stdout)
    spent = standing["spent_epsilon"]
    assert standing["source"] == key and 5.0 < spent <= 6.0, standing

    r = _sg(env, "train", second)  # 6 spent + 6 > the default cap of 10
    assert r.returncode == 1, (r.stdout, r.stderr)
    line = r.stderr.strip()
    assert "\n" not in line and "privacy budget exhausted" in line and key in line, r.stderr
    again = json.loads(_sg(env, "budget", "show", second, "--json").stdout)
    assert again["spent_epsilon"] == pytest.approx(spent) and again["reserved_epsilon"] == 0.0
