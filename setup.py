"""Build script. The metadata is in setup.cfg; this maps the example DAGs into the package.

The top-level ``dags/`` folder is the one copy of the example DAGs: the wheel ships it as
``airflow_provider_tuning/example_dags`` (with its ``data/`` files), which
``python -m airflow_provider_tuning.examples copy <dags folder>`` copies into a deployment.
"""

from setuptools import find_packages, setup

EXAMPLES = "airflow_provider_tuning.example_dags"

setup(
    packages=[
        *find_packages(include=["airflow_provider_tuning", "airflow_provider_tuning.*"]),
        EXAMPLES,
        f"{EXAMPLES}.data",
    ],
    package_dir={EXAMPLES: "dags"},
    package_data={EXAMPLES: ["*.py"], f"{EXAMPLES}.data": ["*.jsonl"]},
)
