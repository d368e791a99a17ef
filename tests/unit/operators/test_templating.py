"""Which template field values are inline data (sent as they are) and which are rendered."""

from __future__ import annotations

import pytest

from airflow_provider_tuning.operators._templating import is_inline_data

INLINE = [
    [{"text_input": "{{ ds }}", "output": "x"}],
    ({"prompt": "{% for %}"},),
    {"examples": []},
    '[{"text_input": "{{ ds }}", "output": "x"}]',
    '  {"prompts": ["{{ ds }}"]}  ',
    "[('{{ ds }}', 'x')]",  # what Jinja renders from an xcom_pull of a list of pairs
    "[" * 100_000 + "]" * 100_000,  # too deep to parse: left to the loader, which names the problem
]
RENDERED = [
    "/data/{{ ds }}.jsonl",
    "s3://bucket/{{ ds_nodash }}/train.csv",
    "{{ ti.xcom_pull(task_ids='prepare') }}",
    "{{ params.prompt }}",
    "{% if params.big %}big.jsonl{% else %}small.jsonl{% endif %}",
    "[{{ a }}, {{ b }}]",
    "What day is {{ ds }}?",
    '"a JSON string"',
]


@pytest.mark.parametrize("value", INLINE, ids=range(len(INLINE)))
def test_inline_data(value):
    assert is_inline_data(value)


@pytest.mark.parametrize("value", RENDERED)
def test_rendered(value):
    assert not is_inline_data(value)
