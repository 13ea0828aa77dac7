"""The secrets file and failed connections never show a secret (red-team: a YAML parser's error
quotes the offending line, password and all), through the installed ``synthgen`` command."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import CliResult

SECRET = "Hx7-secret-pw-41ff"


def _write_spec(home: Path, source: str) -> Path:
    spec = home / "spec.yaml"
    spec.write_text(f"name: sec\nsource: {source}\n")
    return spec


def _secrets(home: Path, content: bytes) -> Path:
    f = home / "secrets.yaml"
    f.write_bytes(content)
    f.chmod(0o600)
    return f


def _leaks(result: CliResult, home: Path) -> list[str]:
    """Where the secret shows up: the output, or any file the run wrote under its home."""
    where = ["stdout"] if SECRET in result.out else []
    where += ["stderr"] if SECRET in result.err else []
    for f in home.rglob("*"):
        if f.is_file() and f.name != "secrets.yaml" and SECRET.encode() in f.read_bytes():
            where.append(str(f.relative_to(home)))
    return where


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # The red-team case: an unclosed quote; PyYAML's message reprints `SG_PW: "<password>`.
        (
            f'SG_PW: "{SECRET}\nother: 1\n'.encode(),
            "not valid YAML at line 3, column 1, in what starts at line 1",
        ),
        (f"SG_PW:\t{SECRET}\n".encode(), "not valid YAML at line 1"),  # a tab: "found character '\t'"
        (f"a: &x {SECRET}\nSG_PW: *{SECRET}\n".encode(), "not valid YAML at line 2"),  # undefined alias
        (f"SG_PW: {{user: {SECRET}\n".encode(), "not valid YAML at line 2"),
        (f"SG_PW: [{SECRET}]\n".encode(), "the value of SG_PW is a list, not a string; quote it"),
        (b"SG_PW: 0777\n", "the value of SG_PW is a number, not a string; quote it"),  # YAML reads 511
        (f"- {SECRET}\n".encode(), "expected NAME: value lines at the top level"),
        (b"SG_PW: \xff" + SECRET.encode() + b"\n", "not a UTF-8 text file"),
    ],
    ids=[
        "unclosed-quote",
        "tab",
        "undefined-alias",
        "unclosed-flow",
        "list",
        "number",
        "top-list",
        "not-utf8",
    ],
)
def test_a_bad_secrets_file_exits_2_with_one_line_that_quotes_nothing_from_it(
    home: Path, synthgen_cli: Callable[..., CliResult], content: bytes, expected: str
) -> None:
    secrets = _secrets(home, content)
    spec = _write_spec(
        home, "{kind: sql, url: 'postgresql://reader@127.0.0.1:1/db', password_env: SG_PW, table: t}"
    )
    env = {"SYNTHGEN_SECRETS_FILE": str(secrets)}
    r = synthgen_cli(["ingest", str(spec)], env=env, cwd=home)
    assert r.code == 2, (r.code, r.err)
    line = r.err.strip()
    assert "\n" not in line and line.startswith(f"error: secrets file {secrets}"), r.err
    assert expected in " ".join(line.split()), r.err
    assert _leaks(r, home) == []
    # --debug prints the traceback: raised `from None`, it carries no chained parser error either.
    debug = synthgen_cli(["--debug", "ingest", str(spec)], env=env, cwd=home)
    assert debug.code != 0 and "SecretsError" in debug.err, debug.err
    assert "ScannerError" not in debug.err and "ParserError" not in debug.err
    assert _leaks(debug, home) == []


def test_a_quoted_secret_from_the_file_is_used_as_written(
    home: Path, synthgen_cli: Callable[..., CliResult]
) -> None:
    """The file works once fixed: the value reaches the connection (a closed port refuses it)."""
    secrets = _secrets(home, b'SG_PW: "0777"\n')
    spec = _write_spec(
        home, "{kind: sql, url: 'postgresql://reader@127.0.0.1:1/db', password_env: SG_PW, table: t}"
    )
    r = synthgen_cli(["ingest", str(spec)], env={"SYNTHGEN_SECRETS_FILE": str(secrets)}, cwd=home)
    assert r.code != 2 and "cannot read sql table t" in r.err and "Connection refused" in r.err, r.err


def test_a_password_with_an_unencoded_at_sign_is_refused_without_showing_its_tail(
    home: Path, synthgen_cli: Callable[..., CliResult]
) -> None:
    """``user:p@ss@host`` parses as host ``ss@host``: the host is shown in messages and the ledger key."""
    url = f"postgresql://reader:pre{SECRET}@127.0.0.1:1/db"
    spec = _write_spec(home, "{kind: sql, url_env: SG_URL, table: t}")
    r = synthgen_cli(["ingest", str(spec)], env={"SG_URL": url.replace("pre", "pre@", 1)}, cwd=home)
    assert r.code == 1 and "its host contains '@'" in r.err and "\n" not in r.err.strip(), r.err
    assert _leaks(r, home) == []


@pytest.fixture
def pg_role(pg_server_url: str) -> Iterator[str]:
    """A login role whose password is :data:`SECRET`, dropped afterwards."""
    name = f"sg_secret_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE ROLE {name} LOGIN PASSWORD '{SECRET}'"))
    try:
        yield name
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("via", ["secrets_file", "url_env"])
@pytest.mark.parametrize("target", ["no-such-database", "closed-port"])
def test_a_refused_connection_never_shows_the_password(
    home: Path,
    synthgen_cli: Callable[..., CliResult],
    pg_server_url: str,
    pg_role: str,
    via: str,
    target: str,
) -> None:
    """Local trust auth takes any password, so the server is made to refuse another way; the
    driver's and SQLAlchemy's errors would carry the DSN."""
    server = make_url(pg_server_url)
    port = (server.port or 5432) if target == "no-such-database" else 1
    where = f"{server.host or '127.0.0.1'}:{port}/sg_no_such_db_{uuid.uuid4().hex[:6]}"
    if via == "secrets_file":
        env = {"SYNTHGEN_SECRETS_FILE": str(_secrets(home, f"SG_PW: '{SECRET}'\n".encode()))}
        source = f"{{kind: sql, url: 'postgresql://{pg_role}@{where}', password_env: SG_PW, table: t}}"
    else:
        env = {"SG_URL": f"postgresql+psycopg://{pg_role}:{SECRET}@{where}?connect_timeout=5"}
        source = "{kind: sql, url_env: SG_URL, table: t}"
    spec = _write_spec(home, source)
    for args in (["ingest", str(spec)], ["anonymize", str(spec)], ["--debug", "ingest", str(spec)]):
        r = synthgen_cli(args, env=env, cwd=home)
        assert r.code == 1, (args, r.err)
        assert _leaks(r, home) == [], (args, r.err)
        if "--debug" not in args:
            line = r.err.strip()
            assert "\n" not in line and "cannot read sql table t at postgresql" in line, r.err
            assert ("does not exist" if target == "no-such-database" else "Connection refused") in line
            assert f"{pg_role}:***@" in line  # the URL is shown, its password masked
