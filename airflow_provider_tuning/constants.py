"""Values shared by the hook, the operators, the sensor and the data loaders.

This module imports nothing, so that the operator and sensor modules (which every DAG file using them
imports on every parse) can use these values without loading the hook or the data loaders.
"""

from __future__ import annotations

#: The connection id operators, sensors and the hook use when none is given.
DEFAULT_CONN_ID = "generative_language_default"

#: The connection type. No ``_`` in it: Airflow logs "Connection schemes ... shall not contain '_'"
#: each time it reads a connection whose type has one (every task and every trigger start).
CONN_TYPE = "generativelanguage"
#: The type earlier builds used; such connections still work (the hook does not check the type).
LEGACY_CONN_TYPE = "generative_language"

#: File extensions the training-data and prompt loaders read (each optionally with ``.gz``).
SUPPORTED_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv")

#: Seconds added to a wait's own deadline for the ``timeout`` of ``defer()``: a backstop that ends the
#: deferral even if the trigger never fires (the trigger's absolute deadline comes first).
DEFER_TIMEOUT_MARGIN = 300.0
