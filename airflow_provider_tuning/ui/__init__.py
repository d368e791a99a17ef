"""The Tuning view: an Airflow plugin (a FastAPI app plus external views) that lists tuning jobs
and charts their loss curves. See ``docs/ui.md``.

This package's ``__init__`` imports nothing: Airflow imports the plugin in every component (task
workers too), so only the api-server, on the view's first request, loads the app.
"""

#: Where the api-server mounts the view's app.
URL_PREFIX = "/tuning"
