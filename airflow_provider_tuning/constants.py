"""Values shared by the hook, the operators, the sensor and the data loaders.

This module imports nothing, so that the operator and sensor modules (which every DAG file using them
imports on every parse) can use these values without loading the hook or the data loaders.
"""

from __future__ import annotations

#: The connection id operators, sensors and the hook use when none is given.
DEFAULT_CONN_ID = "generative_language_default"

#: File extensions the training-data and prompt loaders read (each optionally with ``.gz``).
SUPPORTED_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv")

#: Seconds added to a wait's own deadline for the ``timeout`` of ``defer()``: a backstop that ends the
#: deferral even if the trigger never fires (the trigger's absolute deadline comes first).
DEFER_TIMEOUT_MARGIN = 300.0
