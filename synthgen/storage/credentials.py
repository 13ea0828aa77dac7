"""Where object-store credentials come from: the standard provider chains, never the spec.

* ``s3://``: botocore's chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
  ``AWS_PROFILE`` and ``~/.aws/credentials``/``~/.aws/config``, container and instance roles);
  the endpoint from ``AWS_ENDPOINT_URL`` (or ``endpoint_url`` in ``~/.aws/config``) for
  S3-compatible stores (MinIO, Ceph).
* ``gs://`` and ``abfs://``: gcsfs's and adlfs's own chains (application default credentials;
  ``AZURE_STORAGE_*`` / managed identity). Not exercised by the tests here.
* An Airflow connection: ``SYNTHGEN_STORAGE_CONN_ID=aws_default`` reads ``AIRFLOW_CONN_AWS_DEFAULT``
  (Airflow's URI or JSON form) for ``s3://`` zones: login = access key id, password = secret,
  extra ``endpoint_url`` / ``region_name`` / ``aws_session_token``. Only environment-held
  connections are read (no metastore lookup: a task runner gets them from Airflow's secrets
  backend as environment variables).

A zone URL holding credentials is refused by :mod:`synthgen.storage.urls`; a spec holding
them by :func:`refuse_credentials_in`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from synthgen.errors import SpecError, ZoneConfigError
from synthgen.storage.urls import StoreURL

CONN_ID_ENV = "SYNTHGEN_STORAGE_CONN_ID"
#: Seconds to wait for a store to accept a connection / answer: a wrong endpoint fails fast.
CONNECT_TIMEOUT_S = float(os.environ.get("SYNTHGEN_STORAGE_TIMEOUT_S", "5"))

#: Key names that hold credentials, in any section of a spec.
_CREDENTIAL_KEYS = re.compile(
    r"^(aws_)?(access_key(_id)?|secret(_access)?_key|session_token|secret|token|password|"
    r"account_key|sas_token|client_secret|connection_string|credentials?|storage_options|key_id)$",
    re.IGNORECASE,
)
#: Values that look like a cloud key whatever their key is called (AWS access key ids).
_CREDENTIAL_VALUES = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


#: Spec mappings whose keys are the user's names (columns, operators per column, access tags):
#: a column called ``password`` or ``token`` is data to anonymize, not a credential.
_NAMED_KEYS = frozenset({"columns", "anonymize.operators", "output.access.tags"})


def refuse_credentials_in(data: Any, *, origin: str, _loc: str = "") -> None:
    """Raise :class:`SpecError` (exit 2, one line) if a spec holds a credential anywhere.

    Names the key, never the value. Credentials come from the provider chain of the
    machine that runs the stage (see the module docstring).
    """
    if isinstance(data, Mapping):
        names = _loc in _NAMED_KEYS
        for k, v in data.items():
            loc = f"{_loc}.{k}" if _loc else str(k)
            if not names and isinstance(k, str) and _CREDENTIAL_KEYS.match(k):
                raise SpecError(
                    f"{origin}: {loc}: credentials never go in the spec; give them to the machine that "
                    "runs the stage (environment, ~/.aws, an Airflow connection)"
                )
            refuse_credentials_in(v, origin=origin, _loc=loc)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            refuse_credentials_in(v, origin=origin, _loc=f"{_loc}[{i}]")
    elif isinstance(data, str) and _CREDENTIAL_VALUES.search(data):
        raise SpecError(
            f"{origin}: {_loc or '(value)'}: holds what looks like a cloud access key id; give "
            "credentials to the machine that runs the stage instead"
        )


def airflow_connection(conn_id: str) -> dict[str, Any]:
    """The fields of the Airflow connection ``conn_id`` held in ``AIRFLOW_CONN_<ID>``."""
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(var)
    if not raw:
        raise ZoneConfigError(
            f"{CONN_ID_ENV}={conn_id} but {var} is not set; export the connection to the task's environment"
        )
    if raw.lstrip().startswith("{"):
        try:
            conn = json.loads(raw)
        except ValueError:
            raise ZoneConfigError(f"{var} is neither a connection URI nor valid JSON") from None
        fields = conn.get("extra") or {}
        if isinstance(fields, str):
            fields = json.loads(fields or "{}")
        return {"login": conn.get("login"), "password": conn.get("password"), "extra": fields}
    parts = urlsplit(raw)
    extra: dict[str, Any] = dict(parse_qsl(parts.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    return {
        "login": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "extra": extra,
    }


def storage_options(url: StoreURL) -> dict[str, Any]:
    """fsspec options for ``url``'s store: timeouts, and an Airflow connection's fields when one is named.

    An ``abfs`` root that names its account gets it as ``account_name``: adlfs reads the account
    from its options, not from the path, so without it the zone would land on whatever account
    ``AZURE_STORAGE_ACCOUNT_NAME`` names, and the separation check would have compared the wrong one.
    """
    if url.scheme == "abfs":
        return _azure_options(url)
    if url.scheme != "s3":
        return {}
    config: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": max(CONNECT_TIMEOUT_S, 30.0),
        "retries": {"max_attempts": 2, "mode": "standard"},
    }
    options: dict[str, Any] = {"config_kwargs": config}
    conn_id = os.environ.get(CONN_ID_ENV)
    if conn_id:
        conn = airflow_connection(conn_id)
        extra = conn["extra"]
        if conn["login"] and conn["password"]:
            options.update(key=conn["login"], secret=conn["password"])
            if extra.get("aws_session_token"):
                options["token"] = extra["aws_session_token"]
        client: dict[str, Any] = {}
        endpoint = extra.get("endpoint_url") or (extra.get("service_config", {}).get("s3", {}) or {}).get(
            "endpoint_url"
        )
        if endpoint:
            client["endpoint_url"] = endpoint
        if extra.get("region_name"):
            client["region_name"] = extra["region_name"]
        if client:
            options["client_kwargs"] = client
    return options


def _azure_options(url: StoreURL) -> dict[str, Any]:
    if not url.account:
        return {}
    # adlfs prefers a connection string from the environment over account_name: one naming
    # another account would send this zone there.
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    named = dict(p.partition("=")[::2] for p in conn.split(";") if "=" in p).get("AccountName", "")
    if named and named.lower() != url.account:
        raise ZoneConfigError(
            f"zone root {url} names account {url.account!r} but AZURE_STORAGE_CONNECTION_STRING is for "
            f"account {named.lower()!r}; use one account's credentials for its zone"
        )
    return {"account_name": url.account}


def check_credentials(url: StoreURL, options: Mapping[str, Any]) -> None:
    """Refuse (exit 2) an ``s3://`` zone when the provider chain yields no credentials at all.

    Wrong credentials are caught by the probe that follows (:func:`synthgen.storage.zone.probe`).
    """
    if url.scheme != "s3" or options.get("key") or options.get("anon"):
        return
    import botocore.session

    if botocore.session.get_session().get_credentials() is None:
        raise ZoneConfigError(
            f"no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in "
            f"~/.aws (AWS_PROFILE), an instance role, or {CONN_ID_ENV} naming an Airflow connection"
        )
