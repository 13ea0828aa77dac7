#!/usr/bin/env bash
# The suite needs PostgreSQL (catalog tests, Airflow metadata DB) and Redis (Celery broker).
# They are given on the CI machines; elsewhere, start them yourself (see README, "Services").
set -uo pipefail
PG_URL="${SYNTHGEN_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${SYNTHGEN_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
PY="${PY:-.venv/bin/python}"

"$PY" - "$PG_URL" "$REDIS_URL" <<'PYEOF'
import sys
from sqlalchemy import create_engine, text
pg, redis_url = sys.argv[1], sys.argv[2]
try:
    e = create_engine(pg, connect_args={"connect_timeout": 5})
    with e.connect() as c:
        c.execute(text("select 1"))
except Exception as exc:
    first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    sys.exit(f"PostgreSQL does not answer at {pg.split('@')[-1]} ({first}). Start one (README, Services) or set SYNTHGEN_TEST_PG_URL.")
try:
    import redis
    redis.Redis.from_url(redis_url, socket_connect_timeout=5).ping()
except Exception as exc:
    sys.exit(f"Redis does not answer at {redis_url} ({exc}). Start one (README, Services) or set SYNTHGEN_TEST_REDIS_URL.")
print("services: PostgreSQL and Redis answer")
PYEOF
