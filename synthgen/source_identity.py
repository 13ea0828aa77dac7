"""What data a spec's source names, independent of how the spec spells it (P6, P11; review F1).

The ledger key (``id:<source.id>`` or the resolved location) comes from the spec, which its
author controls. :func:`claims` gives the location's canonical identities, which the budget
module binds to the first key that reserves on them (:func:`synthgen.privacy.budget.reserve`):

- files: the real path (symlinks and ``..`` resolved) and, when the file exists, its device
  and inode, so a hardlink or a second mount of the same file is the same source;
- SQL: :func:`sql_location`, one claim per endpoint (``host:port``), plus the table, or the query
  with its whitespace collapsed.

SQL sources' ledger keys are built from the same canonical location, so every spelling of one
table names one key: ``localhost``, ``127.0.0.1`` and ``::1`` (any loopback address, a Unix
socket) are ``localhost``; the dialect's default port is explicit; user, password, driver suffix
(``postgresql+psycopg``) and URL options are dropped, except the PostgreSQL options that choose
the data (``?host=``, ``?hostaddr=``, ``?port=``, ``?dbname=``, ``search_path`` in ``?options=``)
and libpq's ``PG*`` defaults for what the URL leaves out; the table is lower-cased, stripped,
and loses the default schema (``public``, ``main``, ``dbo``). Letter case is folded even though
synthgen quotes table names (on PostgreSQL ``Patients`` reads a table literally so named): two
tables whose names differ only in case share one budget, which errs on the side of privacy.

A copy of a file, another host name for the same server, a search path set on the server (per
role or per database), or an equivalent rewrite of a query, is not recognised: the README says so.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL

#: Ports a URL may leave implicit, per dialect.
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}
#: The schema an unqualified table name is read from, per dialect (PostgreSQL: see _pg_schema).
_DEFAULT_SCHEMAS = {"postgresql": "public", "sqlite": "main", "mssql": "dbo"}
#: Dialects whose database names compare without letter case.
_CASELESS_DATABASES = {"mysql", "mariadb", "mssql"}
#: Host names that always mean this machine (RFC 6761 and the usual /etc/hosts aliases).
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _file_claims(path: str, suffix: str = "") -> list[str]:
    real = os.path.realpath(path)
    out = [f"path:{real}{suffix}"]
    try:
        st = os.stat(real)
    except OSError:  # gone since ingest: the real path still identifies it
        return out
    return [*out, f"inode:{st.st_dev}:{st.st_ino}{suffix}"]


@dataclass(frozen=True)
class SqlLocation:
    """A SQL source's data, canonically spelled: what the ledger key and the claims are made of.

    No user, password, driver suffix or URL option is part of it (the same table read by another
    user, through another driver, is the same data). ``endpoints`` are ``host:port`` with the
    host lower-cased, every loopback spelling as ``localhost`` and the default port explicit;
    ``table`` is lower-cased without the dialect's default schema (``public.patients`` and
    ``Patients`` are ``patients``).
    """

    dialect: str
    endpoints: tuple[str, ...]
    database: str
    table: str | None

    def url(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.database}"
        return f"{self.dialect}://{','.join(self.endpoints)}/{self.database}"


_WHOLE_TABLE = re.compile(
    r'(?is)\s*select\s+\*\s+from\s+((?:"[^"]+"|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*)){0,2})\s*;?\s*'
)


def whole_table(query: str | None) -> str | None:
    """The table a query reads whole (``SELECT * FROM t``), or None: such a query is the table."""
    m = _WHOLE_TABLE.fullmatch(query or "")
    return m.group(1).replace('"', "") if m else None


def sql_location(spec: Any) -> SqlLocation:
    """The canonical location of a SQL spec's data (see :class:`SqlLocation`)."""
    from synthgen.sources.sql import SqlSource

    url = SqlSource(spec)._url  # holds the password: never rendered here
    dialect = url.drivername.split("+", 1)[0].lower()
    dialect = "postgresql" if dialect == "postgres" else dialect
    # `query: SELECT * FROM t` reads the table whole: the same data, the same identity (red-team).
    table = spec.source.table or whole_table(spec.source.query)
    if dialect == "sqlite":
        db = url.database or ":memory:"
        return SqlLocation(
            dialect, (), db if db == ":memory:" else os.path.realpath(db), _table(dialect, table, "main")[1]
        )
    if dialect == "postgresql":
        endpoints, database = _pg_target(url)
        schema = _pg_schema(url)
    else:
        port = url.port or _DEFAULT_PORTS.get(dialect, 0)
        endpoints, database = [f"{_host(url.host)}:{port}"], url.database or ""
        schema = _DEFAULT_SCHEMAS.get(dialect, "")
    if dialect in _CASELESS_DATABASES:
        database = database.lower()
    catalog, name = _table(dialect, table, schema)
    if catalog is not None and catalog != database.lower():
        database = catalog  # mysql's `db.table`, SQL Server's `db.schema.table`: another database
    return SqlLocation(dialect, tuple(sorted(set(endpoints))), database, name)


def _host(host: str | None) -> str:
    """A host as the ledger spells it: lower case, no trailing dot, loopback as ``localhost``."""
    h = (host or "").strip().lower().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h or h.startswith("/"):  # no host, or a Unix socket's directory: this machine's server
        return "localhost"
    if h in _LOOPBACK_NAMES or h.endswith(".localhost"):
        return "localhost"
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return h
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:  # 127.0.0.0/8, ::1; 0.0.0.0 and :: reach this machine too
        return "localhost"
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _listed(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, tuple | list):
        return [str(v) for v in value]
    return str(value).split(",")


def _pg_target(url: URL) -> tuple[list[str], str]:
    """PostgreSQL's endpoints and database as libpq resolves them.

    ``?host=`` / ``?hostaddr=`` / ``?port=`` / ``?dbname=`` override the URL's own, a URL without
    them falls back to ``PGHOST`` / ``PGHOSTADDR`` / ``PGPORT`` / ``PGDATABASE``, and a missing
    database is the user's name (libpq's default). A multi-host URL names each of its endpoints.
    """
    q, env = url.query, os.environ
    fallback = url.host or env.get("PGHOSTADDR") or env.get("PGHOST") or ""
    hosts = _listed(q.get("hostaddr") or q.get("host")) or [fallback]
    ports = _listed(q.get("port")) or [str(url.port or env.get("PGPORT") or "")]
    out = []
    for i, h in enumerate(hosts):
        p = ports[i] if i < len(ports) else ports[0] if len(ports) == 1 else ""
        if h.count(":") == 1 and not h.startswith("/"):  # the "host:port" form of ?host=
            h, p = h.split(":")
        port = int(p) if p.strip().isdigit() else _DEFAULT_PORTS["postgresql"]
        out.append(f"{_host(h)}:{port}")
    database = q.get("dbname") or url.database or env.get("PGDATABASE") or url.username or env.get("PGUSER")
    return out, str(database or "")


def _pg_schema(url: URL) -> str:
    """The schema an unqualified table is read from: the first of ``search_path`` in the URL's
    ``options`` (or ``PGOPTIONS``) other than ``$user``, else ``public``."""
    options = " ".join(_listed(url.query.get("options"))) or os.environ.get("PGOPTIONS", "")
    m = re.search(r"search_path\s*=\s*(\S+)", options)
    for item in m.group(1).replace("\\", "").split(",") if m else []:
        name = item.strip().strip("'\"")
        if name and name != "$user":
            return name.lower()
    return "public"


def _table(dialect: str, table: str | None, schema: str) -> tuple[str | None, str | None]:
    """``(database or None, table)``: lower case, without ``schema`` (the default one)."""
    if table is None:
        return None, None
    parts = [p.strip().lower() for p in table.strip().split(".")]
    catalog = None
    # MySQL's schema is the database; SQL Server's (and PostgreSQL's) `db.schema.table` names one.
    if len(parts) == 3 or (dialect in ("mysql", "mariadb") and len(parts) == 2):
        catalog, parts = parts[0], parts[1:]
    if len(parts) == 1:
        parts = [schema, *parts]
    if parts[0] == _DEFAULT_SCHEMAS.get(dialect, ""):
        parts = parts[1:]
    return catalog, ".".join(p for p in parts if p)


def _sql_claims(spec: Any) -> list[str]:
    src = spec.source
    loc = sql_location(spec)
    what = (
        f"#table:{loc.table}"
        if loc.table
        else "#query:" + hashlib.sha256(" ".join(str(src.query).split()).rstrip(";").encode()).hexdigest()
    )
    if loc.dialect == "sqlite":
        out = _file_claims(loc.database, what)
    else:
        out = [f"sql:{loc.dialect}://{e}/{loc.database}{what}" for e in loc.endpoints]
    return out + [c for c in _legacy_sql_claims(spec, loc, what) if c not in out]


def _legacy_sql_claims(spec: Any, loc: SqlLocation, what: str) -> list[str]:
    """The identity bound before locations were canonical (the URL's own host and database, the
    table as written): data registered under a key from then is still recognised, so a new
    spelling's key cannot start a fresh budget on it."""
    from synthgen.sources.sql import SqlSource

    if spec.source.table is not None:
        what = f"#table:{spec.source.table}"
    if loc.dialect == "sqlite":
        return _file_claims(loc.database, what)
    url = SqlSource(spec)._url
    host = (url.host or "localhost").lower()
    port = url.port or _DEFAULT_PORTS.get(loc.dialect, 0)
    return [f"sql:{loc.dialect}://{host}:{port}/{url.database or ''}{what}"]


def claims(spec: Any) -> list[str]:
    """The canonical identities of the spec's source data (see the module docstring)."""
    if spec.source.kind == "sql":
        return _sql_claims(spec)
    return _file_claims(str(spec.source_path()))


def source_key(spec: Any) -> str:
    """The ledger's name for the spec's data source (P6: the budget is per source, not per pipeline).

    ``source.id`` when the spec gives one; else files are keyed by their resolved path, SQL
    sources by their canonical location (:func:`sql_location`: no user, password, driver or
    options; loopback hosts, default ports and schemas, and letter case folded) and the table
    (or a hash of the query), so renaming a pipeline, or spelling its source another way, does
    not reset its source's budget.
    """
    src = spec.source
    if src.id is not None:
        return f"id:{src.id}"
    if src.kind != "sql":
        return f"{src.kind}:{spec.source_path().resolve()}"
    from synthgen.ids import settings_hash

    loc = sql_location(spec)
    if loc.table:
        return f"sql:table {loc.table} at {loc.url()}"
    return f"sql:query at {loc.url()}#{settings_hash(src.query)}"
