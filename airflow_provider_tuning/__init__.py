"""Apache Airflow provider for Google's model-tuning REST API (the Generative Language API)."""

__version__ = "0.2.0"
