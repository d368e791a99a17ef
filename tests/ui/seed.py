"""Tuning jobs in known states on an emulator: finished, running and failed Gemini tuned models
(and, when asked, Vertex AI jobs), for the Tuning view's API and browser tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tuning_api_emulator import Emulator

API_KEY = "ui-test-key-3c9e"
STEP_SECONDS = 1.0


class ManualClock:
    """A clock the test moves by hand (the emulator's job progress follows it)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def connection_json(url: str, api_key: str = API_KEY) -> str:
    """An ``AIRFLOW_CONN_...`` value for a Gemini API connection to the emulator at ``url``."""
    return json.dumps({"conn_type": "generativelanguage", "host": url, "password": api_key})


def _body(display_name: str, examples: int, epochs: int) -> dict[str, Any]:
    return {
        "displayName": display_name,
        "baseModel": "models/gemini-1.5-flash-001-tuning",
        "tuningTask": {
            "hyperparameters": {"epochCount": epochs, "batchSize": 2, "learningRate": 0.001},
            "trainingData": {
                "examples": {"examples": [{"textInput": f"q{i}", "output": f"a{i}"} for i in range(examples)]}
            },
        },
    }


@dataclass
class Seeded:
    """The names of the seeded models by state, and each one's snapshot count."""

    finished: str = ""
    running: str = ""
    failed: str = ""
    snapshots: dict[str, int] = field(default_factory=dict)


def seed_gemini(emu: Emulator, clock: ManualClock, *, extra: int = 0) -> Seeded:
    """Create one finished, one running and one failed tuned model (plus ``extra`` finished ones).

    :param emu: an emulator made with ``clock`` and :data:`API_KEY`.
    :param clock: the emulator's clock.
    :param extra: more finished models (for paging tests).
    """
    import os

    from airflow_provider_tuning.hooks.generative_language import GenerativeLanguageHook

    os.environ["AIRFLOW_CONN_UI_SEED"] = connection_json(emu.url)
    hook = GenerativeLanguageHook("ui_seed")
    seeded = Seeded()
    for i in range(extra):
        hook.create_tuned_model(_body(f"bulk {i:04d}", 4, 1), f"bulk-{i:04d}")
    hook.create_tuned_model(_body("Finished model", 8, 2), "finished-model")  # 8 steps
    clock.advance(20 * STEP_SECONDS)
    hook.create_tuned_model(_body("Running model", 40, 2), "running-model")  # 40 steps
    hook.create_tuned_model(_body("Failed model", 20, 2), "failed-model")  # 20 steps
    emu.fail_model("failed-model", message="training diverged: loss is NaN", at_step=6)
    clock.advance(12.5 * STEP_SECONDS)
    seeded.finished, seeded.running, seeded.failed = (
        "tunedModels/finished-model",
        "tunedModels/running-model",
        "tunedModels/failed-model",
    )
    for name in (seeded.finished, seeded.running, seeded.failed):
        model = hook.get_tuned_model(name)
        seeded.snapshots[name] = len(model.get("tuningTask", {}).get("snapshots") or [])
    hook.close()
    return seeded
