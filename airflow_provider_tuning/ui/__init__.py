"""The Tuning view: an Airflow plugin (a FastAPI app plus external views) that lists tuning jobs
and charts their loss curves. See ``docs/ui.md``."""
