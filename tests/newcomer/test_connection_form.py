"""The connection form's declaration: its choices are the parser's, and the earlier connection type
``generative_language`` resolves to this provider's hook (so Airflow can test such connections)."""

from __future__ import annotations

from airflow_provider_tuning.get_provider_info import CONN_FIELDS, PLACEHOLDERS, UI_FIELD_BEHAVIOUR
from airflow_provider_tuning.hooks.connection import API_VERSIONS, AUTH_TYPES
from airflow_provider_tuning.hooks.generative_language import (
    GenerativeLanguageHook,
    LegacyTypeGenerativeLanguageHook,
)


def test_the_forms_choices_are_the_ones_the_parser_accepts():
    assert set(CONN_FIELDS["api_version"]["schema"]["enum"]) == set(API_VERSIONS)
    assert CONN_FIELDS["auth_type"]["schema"]["enum"] == list(AUTH_TYPES)


def test_every_placeholder_belongs_to_a_shown_field():
    shown_standard = {"host", "port", "password"}
    assert shown_standard.isdisjoint(UI_FIELD_BEHAVIOUR["hidden-fields"])
    assert set(PLACEHOLDERS) == shown_standard | set(CONN_FIELDS) - {"auth_type"}
    assert UI_FIELD_BEHAVIOUR["placeholders"] == PLACEHOLDERS


def test_the_earlier_connection_type_gets_this_providers_hook():
    from airflow.models.connection import Connection

    conn = Connection(conn_id="legacy", conn_type="generative_language", host="http://127.0.0.1:9")
    hook = conn.get_hook()
    assert type(hook) is LegacyTypeGenerativeLanguageHook
    assert isinstance(hook, GenerativeLanguageHook)
    assert hook.conn_id == "legacy"
