"""What ``synthgen read NAME`` and ``synthgen report NAME`` mean by NAME.

A published dataset is named ``<pipeline>-synthetic`` (or ``output.name``), while the snapshots,
models and staging shards of a pipeline carry the pipeline's own name. Looking NAME up in every
zone let ``read visits`` land on a staging shard, and ``report visits`` find nothing, since the
report carries the published name. Here a read resolves only to a published dataset, a report
to a report, and a pipeline name is either mapped (reports) or refused with the right name.
"""

from __future__ import annotations

from pathlib import Path

from synthgen.catalog import Catalog, Dataset
from synthgen.errors import NotFoundError, SpecError

#: The catalog kind of an encrypted dataset in the synthetic zone.
PUBLISHED = "synthetic"
LIST_HINT = "list them with `synthgen catalog list --zone synthetic`"


def published_dataset(catalog: Catalog, name: str) -> Dataset:
    """The published dataset with this id, else the newest one with this name."""
    ds = catalog.get_dataset(name)
    if ds is not None and ds.zone == "synthetic" and ds.kind == PUBLISHED:
        return ds
    found = [d for d in catalog.list_datasets(zone="synthetic", kind=PUBLISHED) if d.name == name]
    if found:
        return found[-1]
    outputs = _published_names_of_pipeline(catalog, name)
    if outputs:
        raise SpecError(
            f"{name!r} is a pipeline, not a published dataset; its published dataset is "
            f"{outputs[-1]!r} ({LIST_HINT})"
        )
    raise NotFoundError(f"no published dataset named {name!r}; {LIST_HINT}")


def report_dataset(catalog: Catalog, name: str) -> Dataset:
    """A report by id, else the newest report of that published name or pipeline name."""
    ds = catalog.get_dataset(name)
    if ds is not None and ds.kind == "report":
        return ds
    reports = catalog.list_datasets(zone="real", kind="report")
    # The evaluate stage names a report after the published dataset and files it under
    # reports/<pipeline>/<id>/report.html.
    found = [d for d in reports if d.name == name] or [
        d for d in reports if Path(d.path).parent.parent.name == name
    ]
    if not found:
        raise NotFoundError(
            f"no report for {name!r}; run `synthgen evaluate <spec>` first "
            "(list reports with `synthgen catalog list --zone real`)"
        )
    return found[-1]


def _published_names_of_pipeline(catalog: Catalog, pipeline: str) -> list[str]:
    models = {d.id for d in catalog.list_datasets(kind="model") if d.name == pipeline}
    if not models:
        return []
    return [
        d.name
        for d in catalog.list_datasets(zone="synthetic", kind=PUBLISHED)
        if models.intersection(catalog.parents(d.id))
    ]
