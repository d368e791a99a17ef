"""Secret-leak scan: no API key, client secret, refresh token or access token is left anywhere.

1. Every example DAG runs on the real deployment (api-server, scheduler, dag-processor, triggerer)
   with a recognisable API key in ``generative_language_default``; the emulator accepts only
   that key, so every successful call carried it. ``example_vertex_tuning`` runs there too, on a
   ``google_cloud_platform`` connection whose ``authorized_user`` credentials (recognisable client
   secret and refresh token) refresh at the emulator's ``/token``: those two secrets and every
   access token the emulator issued are looked for as well. Its run also proves its Vertex AI
   outcome: exactly one tuning job labelled with its ``tune`` task instance, the one its XCom
   names, and after the teardown its endpoint deleted (and its model too when it was discarded).
2. ``example_gemini_tuning`` runs through ``dag.test()`` (``airflow dags test``) with an OAuth
   ``authorized_user`` connection: recognisable client secret and refresh token, traded by a
   loopback token endpoint for a recognisable access token, the only credential the emulator accepts.

Searched, for each: every file of the Airflow home as raw bytes (task logs, trigger logs, the
components' and the CLI's output, the sqlite DB with its XCom, rendered template fields, variables
and task instances), the XCom and ``rendered_task_instance_fields`` rows, every ``trigger`` row
observed while the tasks were deferred (kwargs decrypted with the deployment's Fernet key) and
the task instances' ``next_kwargs``, and the emulator's request log (paths, queries, bodies,
headers). Zero hits. Then controls plant a secret in each kind of place and the same scan must
find it, so a leak cannot go unnoticed.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from tests.reliability import airflow_db, vertex_state
from tests.reliability.airflow_db import DbSampler, find_key
from tests.reliability.conftest import Deployment, example_dag_ids
from tests.reliability.dagtest import run_dag_test
from tests.reliability.leakscan import Hit, LeakScanner, make_secret, request_log_items
from tests.reliability.token_endpoint import TokenEndpoint
from tuning_api_emulator import Emulator

TRIGGER_CLASSES = ("airflow_provider_tuning.triggers.tuning.TuningOperationTrigger",)
VERTEX_DAG = "example_vertex_tuning"


def _db_items(db: Path, dag_ids: list[str]) -> tuple[list[tuple[str, Any]], dict[str, int]]:
    """XCom and rendered-template-field rows of ``dag_ids``, and how many there are per table."""
    xcoms: list[dict[str, Any]] = []
    rtifs: list[dict[str, Any]] = []
    for dag_id in dag_ids:
        xcoms += airflow_db.rows(db, "SELECT * FROM xcom WHERE dag_id = ?", (dag_id,))
        rtifs += airflow_db.rows(
            db, "SELECT * FROM rendered_task_instance_fields WHERE dag_id = ?", (dag_id,)
        )
    items = [(f"xcom {x['dag_id']}.{x['task_id']}[{x['key']}]", x["value"]) for x in xcoms]
    items += [(f"rtif {r['dag_id']}.{r['task_id']}", r["rendered_fields"]) for r in rtifs]
    return items, {"xcom": len(xcoms), "rtif": len(rtifs)}


def _sampler_items(sampler: DbSampler) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for trigger_id, observations in sampler.triggers.items():
        for row in observations:
            items += [(f"trigger {trigger_id} kwargs", row.kwargs), (f"trigger {trigger_id} raw", row.raw)]
    items += [(f"next_kwargs {dag}.{task}", value) for dag, task, value in sampler.next_kwargs]
    return items


def _scan(
    scanner: LeakScanner,
    home: Path,
    dag_ids: list[str],
    sampler: DbSampler,
    request_log: list[dict[str, Any]],
) -> tuple[list[Hit], dict[str, int]]:
    """Everything the module docstring lists; returns the hits and how much of each was searched."""
    items, counts = _db_items(home / "airflow.db", dag_ids)
    items += _sampler_items(sampler)
    items += request_log_items("emulator", request_log)
    hits = scanner.scan_tree(home) + scanner.scan_many(items)
    counts["files"] = sum(1 for p in home.rglob("*") if p.is_file())
    counts["trigger_rows"] = sum(
        1 for rows in sampler.triggers.values() if rows and rows[0].classpath in TRIGGER_CLASSES
    )
    counts["requests"] = len(request_log)
    return hits, counts


def _finished_runs(d: Deployment, dag_ids: list[str]) -> dict[str, str] | None:
    """``{"<dag_id>/<run_id>": state}`` of every run of ``dag_ids``, once none is still going."""
    states = {}
    for dag_id in dag_ids:
        for run in d.stack.request("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]:
            states[f"{dag_id}/{run['dag_run_id']}"] = run["state"]
    return states if all(state in ("success", "failed") for state in states.values()) else None


def _check_controls(
    scanner: LeakScanner, secret: str, home: Path, fernet_key: str, emulator_url: str
) -> None:
    """Plant ``secret`` in each kind of place the scan covers: each plant must be found."""
    name = next(n for n, v in scanner.secrets.items() if v == secret)
    # a log file, whole and truncated
    planted_dir = home.parent / f"{home.name}-control"
    shutil.rmtree(planted_dir, ignore_errors=True)
    (planted_dir / "logs").mkdir(parents=True)
    (planted_dir / "logs" / "task.log").write_text(f"token refresh failed for {secret[:-4]}...\n")
    assert [h.secret_name for h in scanner.scan_tree(planted_dir)] == [name]
    # an XCom value inside a copy of the metadata DB
    shutil.copy2(home / "airflow.db", planted_dir / "airflow.db")
    conn = sqlite3.connect(planted_dir / "airflow.db")
    try:
        with conn:
            conn.execute(
                'INSERT INTO xcom (dag_run_id, task_id, map_index, "key", dag_id, run_id, value, timestamp) '
                "VALUES (999999, 'control', -1, 'return_value', 'control', 'control', ?, '2026-01-01')",
                (json.dumps({"auth": {"api_key": secret}}),),
            )
    finally:
        conn.close()
    (planted_dir / "logs" / "task.log").unlink()
    hits = scanner.scan_tree(planted_dir)
    assert hits
    assert {h.secret_name for h in hits} == {name}
    assert {Path(h.source).name for h in hits} == {"airflow.db"}, hits
    # encrypted trigger kwargs: invisible in the raw row, found once decrypted
    encrypted = Fernet(fernet_key.encode()).encrypt(json.dumps({"api_key": secret}).encode()).decode()
    assert scanner.scan_text("raw", encrypted) == []
    assert scanner.scan_value("decrypted", airflow_db.decrypt_kwargs(encrypted, fernet_key))
    # a secret that reaches the emulator's request log is found there (a credential parameter such
    # as ?key= is redacted by the emulator itself, so plant it in an ordinary one)
    requests.get(f"{emulator_url}/v1beta/models", params={"pageToken": secret}, timeout=10)
    entries = requests.get(f"{emulator_url}/_emulator/requests", timeout=10).json()["requests"]
    assert scanner.scan_many(request_log_items("control", entries))
    # base64-encoded
    assert scanner.scan_text("b64", base64.b64encode(secret.encode()).decode())


def _check_vertex_outcome(d: Deployment, run_id: str) -> None:
    """One tuning job for the run's ``tune`` task (counted at the emulator by its labels), the one
    the XCom names; the endpoint deleted by the teardown, the model kept only when promoted."""
    jobs = vertex_state.tuning_jobs(d.emulator)
    mine = vertex_state.jobs_of(jobs, VERTEX_DAG, "tune", run_id)
    assert len(mine) == 1, [(job.name, job.labels) for job in jobs]
    job = mine[0]
    assert [j.name for j in jobs if j.labels.get("airflow-dag") == VERTEX_DAG] == [job.name]
    result = d.stack.xcom(VERTEX_DAG, run_id, "tune")
    assert result["state"] == "JOB_STATE_SUCCEEDED", result
    assert result["tuning_job"] == job.name
    assert result["endpoint"] == job.endpoint_name
    assert str(result["tuned_model"]).split("@")[0] == job.model_name
    assert d.stack.xcom(VERTEX_DAG, run_id, "tune", key="endpoint") == job.endpoint_name
    evaluated = d.stack.xcom(VERTEX_DAG, run_id, "evaluate")
    assert evaluated["results"], evaluated
    assert all(r.get("error") is None for r in evaluated["results"]), evaluated
    states = d.stack.task_states(VERTEX_DAG, run_id)
    assert states["delete_endpoint"] == "success", states
    assert job.endpoint_delete_time is not None, "the teardown left the endpoint"
    if states["promote"] == "success":
        assert states["discard_candidate"] == "skipped", states
        assert job.model_delete_time is None, "the promoted model was deleted"
    else:
        assert states["discard_candidate"] == "success", states
        assert job.model_delete_time is not None, "the discarded model was kept"


def test_example_dags_on_a_real_deployment_leak_no_api_key(deployment: Deployment):
    d = deployment
    dag_ids = example_dag_ids()
    assert len(dag_ids) >= 4, dag_ids
    with DbSampler(d.db, d.fernet_key) as sampler:
        runs = {dag_id: d.stack.trigger(dag_id) for dag_id in dag_ids}
        states = {dag_id: d.wait_run(dag_id, run_id) for dag_id, run_id in runs.items()}
        # Unpausing a scheduled example (the weekly pipeline) also makes the scheduler start its
        # latest scheduled run: wait for every run, and scan those too.
        all_runs = d.stack.wait_for(lambda: _finished_runs(d, dag_ids), 180, "every example run to end")
        for dag_id in dag_ids:
            d.stack.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})
    assert not sampler.errors
    assert states == dict.fromkeys(dag_ids, "success"), {
        dag_id: d.stack.task_states(dag_id, run_id) for dag_id, run_id in runs.items()
    }
    assert set(all_runs.values()) == {"success"}, all_runs

    assert VERTEX_DAG in dag_ids
    _check_vertex_outcome(d, runs[VERTEX_DAG])
    # The Vertex AI run traded the refresh token for access tokens at the emulator (besides the one
    # the fixture took to create the bucket), and those authorized its calls.
    tokens = vertex_state.issued_tokens(d.emulator)
    token_grants = [e for e in d.emulator.request_log if e["path"] == "/token" and e["status"] == 200]
    assert len(token_grants) >= 2, token_grants
    assert len(tokens) >= 2, len(tokens)
    assert any("/tuningJobs" in e["path"] and e["status"] == 200 for e in d.emulator.request_log)

    scanner = LeakScanner(
        {
            "api_key": d.api_key,
            **d.oauth_secrets,
            **{f"access_token_{index}": token for index, token in enumerate(tokens)},
        }
    )
    hits, counts = _scan(scanner, d.home, dag_ids, sampler, d.emulator.request_log)
    assert hits == []

    # The scan covered real material: each DAG deferred on the provider's trigger (row seen while
    # deferred) and has trigger logs, XComs and rendered fields; the key authenticated calls.
    assert counts["trigger_rows"] >= len(dag_ids), counts
    assert counts["xcom"] >= len(dag_ids), counts
    assert counts["rtif"] >= len(dag_ids), counts
    vertex_triggers = [
        rows[0]
        for rows in sampler.triggers.values()
        if rows and find_key(rows[0].kwargs, "backend") == "vertex"
    ]
    assert len(vertex_triggers) == 1, [rows[0].kwargs for rows in sampler.triggers.values() if rows]
    for dag_id, run_id in runs.items():
        run_logs = d.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        assert list(run_logs.rglob("*.log.trigger.*")), f"no trigger log for {dag_id}"
    assert any(entry["status"] == 200 for entry in d.emulator.request_log)

    for secret in scanner.secrets.values():
        _check_controls(scanner, secret, d.home, d.fernet_key, d.emulator.url)

    # End-to-end control: a DAG that leaks the key on purpose (XCom, and its log in two pieces
    # that the secrets masker cannot recognise) is caught by the same scan. (The scan before it
    # found nothing, so every hit now comes from this run.)
    control = "reliability_leak_control"
    control_run = d.stack.trigger(control)
    assert d.wait_run(control, control_run) == "success"
    hits, _ = _scan(scanner, d.home, [*dag_ids, control], DbSampler(d.db, d.fernet_key), [])
    leaked_in = {hit.source.split(" ")[0] for hit in hits}
    assert "xcom" in leaked_in, hits
    assert any(f"dag_id={control}" in hit.source for hit in hits), hits


def test_an_oauth_run_through_dag_test_leaks_no_oauth_secret(dag_test_setup):
    setup = dag_test_setup
    endpoint = TokenEndpoint(
        client_id="leakcheck-client.apps.example.test",
        client_secret=make_secret("CLIENTSECRET"),
        refresh_token=make_secret("REFRESHTOKEN"),
        access_token=make_secret("TOKEN"),
    ).start()
    home = setup.new_home("oauth")
    dag_id = "example_gemini_tuning"
    try:
        with Emulator(step_seconds=0.1, api_keys=[], tokens=[endpoint.access_token]) as emulator:
            sampler = DbSampler(home / "airflow.db", setup.fernet_key)

            def sample() -> None:
                try:
                    sampler.sample()
                except Exception as err:  # reported below, without stopping the run
                    sampler.errors.append(f"{type(err).__name__}: {err}")

            connection = {
                "conn_type": "generativelanguage",
                "host": emulator.url,
                "extra": {"auth_type": "authorized_user", "keyfile_dict": endpoint.authorized_user_info()},
            }
            run = run_dag_test(
                dag_id,
                template=setup.template,
                home=home,
                dags_folder=setup.dags_folder,
                fernet_key=setup.fernet_key,
                connection=connection,
                extra_env={"AIRFLOW__GENERATIVE_LANGUAGE__POLL_INTERVAL": "1"},
                watch=sample,
            )
            sampler.sample()
            request_log = emulator.request_log
            assert run.returncode == 0, run.output[-3000:]
            assert run.run_state() == "success", run.task_states()
            # The OAuth flow really ran: tokens were granted for the exact secrets, and the
            # emulator (which accepts only that access token) answered every call it authorized.
            assert endpoint.granted >= 1
            assert endpoint.refused == 0
            assert request_log
            assert all(e["headers"].get("Authorization") == "<redacted>" for e in request_log)
            assert {e["status"] for e in request_log} <= {200}, [e["status"] for e in request_log]

            scanner = LeakScanner(
                {
                    "client_secret": endpoint.client_secret,
                    "refresh_token": endpoint.refresh_token,
                    "access_token": endpoint.access_token,
                }
            )
            hits, counts = _scan(scanner, home, [dag_id], sampler, request_log)
            assert hits == []
            assert not sampler.errors
            assert counts["xcom"] >= 1, counts
            assert counts["rtif"] >= 1, counts
            assert counts["trigger_rows"] >= 1, counts  # dag.test() stores the deferral's trigger too
            for secret in scanner.secrets.values():
                _check_controls(scanner, secret, home, setup.fernet_key, emulator.url)
    finally:
        endpoint.stop()
