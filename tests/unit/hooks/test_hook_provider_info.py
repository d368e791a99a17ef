"""get_provider_info(): valid for Airflow's schema; the connection type, form and config are registered."""

from __future__ import annotations

import importlib
import json
import pathlib

import airflow
import jsonschema
import pytest

from airflow_provider_tuning.get_provider_info import CONN_FIELDS, get_provider_info
from airflow_provider_tuning.hooks import connection as connection_module

AIRFLOW_DIR = pathlib.Path(airflow.__file__).parent
HOOK_CLASS = "airflow_provider_tuning.hooks.generative_language.GenerativeLanguageHook"


def _schema(name: str) -> dict:
    return json.loads((AIRFLOW_DIR / name).read_text())


def test_provider_info_validates_against_airflows_schema():
    info = get_provider_info()
    jsonschema.validate(info, _schema("provider_info.schema.json"))
    assert info["package-name"] == "airflow-provider-tuning"
    modules = {module for entry in info["hooks"] + info["operators"] for module in entry["python-modules"]}
    assert {
        "airflow_provider_tuning.hooks.generative_language",
        "airflow_provider_tuning.hooks.vertex",
        "airflow_provider_tuning.operators.vertex_tuning",
        "airflow_provider_tuning.operators.vertex_manage",
    } <= modules
    for module in modules:  # every module listed exists
        importlib.import_module(module)
    integrations = {i["integration-name"] for i in info["integrations"]}
    assert integrations == {"Generative Language API (tuning)", "Vertex AI (tuning)"}
    for kind in ("hooks", "operators"):
        assert {entry["integration-name"] for entry in info[kind]} <= integrations


def test_schema_validation_would_catch_a_broken_config():
    info = get_provider_info()
    info["config"]["generative_language"]["options"]["poll_interval"]["type"] = "duration"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(info, _schema("provider_info.schema.json"))


def test_connection_type_declares_fields_and_behaviour():
    conn_type, legacy = get_provider_info()["connection-types"]
    assert legacy["connection-type"] == "generative_language"
    assert legacy["conn-fields"] == conn_type["conn-fields"]
    assert conn_type["connection-type"] == "generativelanguage"
    assert conn_type["hook-class-name"] == HOOK_CLASS
    fields = conn_type["conn-fields"]
    assert fields["keyfile_dict"]["schema"]["format"] == "password"
    for name, spec in fields.items():
        assert spec["label"]
        assert "null" in spec["schema"]["type"]
        # every declared field is read by ConnectionSettings.from_connection
        assert name in connection_module._EXTRA_KEYS
    behaviour = conn_type["ui-field-behaviour"]
    jsonschema.validate(
        {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        },
        _schema("customized_form_field_behaviours.schema.json"),
    )
    assert behaviour["relabeling"]["password"] == "API key"
    assert set(behaviour["placeholders"]) - {"host", "port", "password"} <= set(CONN_FIELDS)


def test_config_section_defaults():
    options = get_provider_info()["config"]["generative_language"]["options"]
    assert options["poll_interval"]["default"] == "30"
    assert options["poll_interval"]["type"] == "integer"
    assert set(options) >= {"poll_interval", "default_timeout"}


def test_trigger_connection_limit_default_is_the_triggers():
    from airflow_provider_tuning.triggers.tuning import DEFAULT_MAX_CONNECTIONS

    option = get_provider_info()["config"]["generative_language"]["options"]["trigger_max_connections"]
    assert option["default"] == str(DEFAULT_MAX_CONNECTIONS)
    assert option["type"] == "integer"


def test_providers_manager_registers_hook_widgets_and_behaviour():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    hook_info = ProvidersManagerTaskRuntime().hooks["generativelanguage"]
    assert hook_info is not None
    assert hook_info.hook_class_name == HOOK_CLASS
    assert hook_info.connection_id_attribute_name == "conn_id"
    assert hook_info.hook_name == "Generative Language (tuning)"
    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    assert widgets["extra__generativelanguage__keyfile_dict"].is_sensitive
    assert not widgets["extra__generativelanguage__key_path"].is_sensitive
    behaviour = manager.field_behaviours["generativelanguage"]
    assert "login" in behaviour["hidden_fields"]
    assert behaviour["placeholders"]["extra__generativelanguage__api_version"] == "v1beta"
