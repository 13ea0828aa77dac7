"""Run one DAG with ``dag.test()`` and print what happened as one JSON line.

Used by the tests as ``python tests/airflow/dag_test_run.py DAG_ID CONF_JSON`` in a child
process whose environment holds the Airflow configuration (AIRFLOW_HOME, DAGS_FOLDER).
Prints ``{"state", "tasks", "tries", "events"}`` read back from the metadata DB. Given a
JSON list of confs instead, it triggers each and prints ``{"rejected": [message or null]}``
(null: that conf was accepted and its run went ahead).
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(json.dumps({"import_errors": {str(k): v for k, v in bag.import_errors.items()}}))
        return 2
    dag = bag.dags[dag_id]
    if isinstance(conf, list):  # confs that must each be refused before anything runs
        rejected = []
        for one in conf:
            try:
                dag.test(run_conf=one)
            except ParamValidationError as exc:
                rejected.append(str(exc))
            else:
                rejected.append(None)
        print(json.dumps({"rejected": rejected}))
        return 0
    run = dag.test(run_conf=conf)
    run_id = run.run_id
    with create_session() as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        tasks = {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state) for ti in tis
        }
        tries = {ti.task_id: ti.try_number for ti in tis if ti.map_index < 0}
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run_id)).all()
        out_events = [{"uri": e.asset.uri, "extra": e.extra} for e in events]
        xcoms = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ).all()
        out_xcoms = [{"task_id": x.task_id, "key": x.key, "value": x.value} for x in xcoms]
    result = {"run_id": run_id, "state": str(state), "tasks": tasks, "tries": tries, "events": out_events}
    print(json.dumps(result | {"xcoms": out_xcoms}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
