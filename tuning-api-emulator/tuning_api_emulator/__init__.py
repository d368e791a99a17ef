"""A local emulator of Google's model-tuning REST APIs (Generative Language API and Vertex AI).

It serves the tuning, operation, permission, model and generation routes of ``v1beta``,
``v1beta3`` and ``v1`` over real HTTP (aiohttp), with no cloud account and no Airflow import;
and, at the same address, Vertex AI tuning jobs (``v1``/``v1beta1``, :mod:`.vertex_service`),
a Cloud Storage JSON API subset (:mod:`.storage`, for ``STORAGE_EMULATOR_HOST``) and Google's
OAuth token endpoint ``POST /token`` (:mod:`.oauth`).
It tests pipelines, not model quality: a tuned model answers with the output of its most
similar training example.

Install it on its own (aiohttp is its only dependency; no Airflow)::

    pip install ./tuning-api-emulator

In process (tests)::

    from tuning_api_emulator import Emulator

    with Emulator(step_seconds=0.02) as emu:      # 127.0.0.1, a free port
        emu.url                                   # "http://127.0.0.1:<port>"
        emu.set_faults(match="GetOperation", error_503=0.2, seed=1)
        emu.request_log                           # method, path, query, body (credentials redacted)

From a shell (``python -m tuning_api_emulator`` is the same command)::

    tuning-api-emulator --port 8085 [--host 127.0.0.1] [--step-seconds 0.5]
        [--api-key K ...] [--token T ...] [--state-file F] [--faults JSON-or-file] [--seed N]
        [--max-body-bytes N] [--body-timeout S] [--log-body-bytes N] [--verbose]

A host other than loopback logs a warning: the emulator's credentials are of no value and it has
no TLS, so it should listen on loopback only.

What it does (details in each module):

* Tuning jobs progress in time, ``step_seconds`` per step, ``totalSteps = ceil(examples * epochs /
  batch)``; the model goes ``CREATING`` -> ``ACTIVE``; the operation gains ``completedSteps``,
  ``completedPercent`` and ``snapshots``, then ``done`` and a ``response``. Progress is computed
  from the clock, so it continues across a restart on the same ``--state-file``.
* Default hyperparameters per version (:func:`.tuning.default_hyperparameters`): datasets of fewer
  than 500 examples get the smaller batch size (v1beta 4, v1beta3 16), else the larger (16, 64).
* Credentials: an API key (``x-goog-api-key`` or ``?key=``) or a bearer token is required
  (403/400/401 as the service answers); with none configured any non-empty key or token is
  accepted, and once ``--api-key`` or ``--token`` configures any, only configured ones pass. The
  request log redacts credential headers and query parameters.
* Faults on demand per route (seeded 429 with ``Retry-After``, 500, 503, latency, connections
  dropped before the request is handled - ``drop`` - or after it, so the change commits but the
  answer is lost - ``drop_after``): ``--faults``, ``Emulator(faults=...)``, ``emu.set_faults(...)``
  or ``PUT /_emulator/faults``. See :mod:`.faults` and :mod:`.control`.
* Bounded request bodies (:mod:`.bodies`): 413 over the maximum size, 408 when one arrives too
  slowly; JSON nested deeper than 100 levels or holding a lone surrogate is a 400, refused before
  any state changes.
* The ``fields`` system parameter (partial responses, :mod:`.partial`), e.g.
  ``?fields=name,done,metadata(completedSteps,totalSteps),error``.

Making a tuning job fail, on purpose
------------------------------------
Two ways; either way the model ends ``FAILED`` and its operation is ``done`` with
``error {"code": 13, "message": ...}`` (INTERNAL):

1. Put ``emulator:fail`` in the tuned model's ``displayName`` or ``description`` when creating it:
   the job fails half-way through its steps. ``emulator:fail-at=<N>`` fails it at step ``N``,
   with ``completedSteps`` ``N`` (``emulator:fail-at=0`` fails it at once).
2. While a job runs, ``POST /_emulator/fail/<tuned model id>`` (optional body
   ``{"message": "...", "atStep": N}``), or ``emu.fail_model("<id>")`` in Python.

A ``v1`` ``tunedModels/*/operations/*:cancel`` also ends a running job: ``FAILED`` with
``error {"code": 1}`` (CANCELLED).

A Vertex AI tuning job fails the same way (``emulator:fail`` in ``tunedModelDisplayName`` or
``description``; ``POST /_emulator/vertex/fail/<job id>`` or ``emu.fail_tuning_job(...)``), ends
``JOB_STATE_FAILED`` with ``error.code`` 13, or 3 for a bad dataset; ``:cancel`` ends it
``JOB_STATE_CANCELLED`` with ``error.code`` 1. See :mod:`.vertex_jobs` for its timeline.
"""

from __future__ import annotations

from tuning_api_emulator.runner import Emulator

__all__ = ["Emulator"]
