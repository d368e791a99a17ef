"""Every JSON response the emulator tests received parses strictly (ignore_unknown_fields=False)
into its official message type from google-ai-generativelanguage (Operation into
google.longrunning.Operation with resolvable Any types, v1beta3 included), with enums as strings
(or numbers when asked), RFC 3339 timestamps, int64 as strings and default values left out.

The client in emulator_support checks each response when it arrives; this module (named to run
last) re-checks the whole collection and makes its own tour of every rpc so it proves something
when run alone too."""

from __future__ import annotations

from collections import Counter

import google.ai.generativelanguage_v1 as v1
import google.ai.generativelanguage_v1beta as v1beta
import google.ai.generativelanguage_v1beta3 as v1beta3
import pytest

from tests.emulator.emulator_support import (
    COLLECTED,
    Api,
    Collected,
    FakeClock,
    strict_parse,
    tuned_model_body,
)
from tuning_api_emulator.jsonio import ENUM_NUMBERS
from tuning_api_emulator.routes import ROUTES


def _tour(api: Api, clock: FakeClock, int_enums: bool) -> None:
    params = {"$alt": "json;enum-encoding=int"} if int_enums else {}
    contents = {"contents": [{"parts": [{"text": "3"}]}]}
    gemini = api.post(
        "/v1beta/tunedModels",
        tuned_model_body(display_name="tour"),
        params={"tunedModelId": "tour", **params},
    )
    palm = api.post(
        "/v1beta3/tunedModels",
        tuned_model_body(base_model="models/text-bison-001"),
        params={"tunedModelId": "tour-palm", **params},
    )
    cancelled = api.post(
        "/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "tour-cancel", **params}
    )
    clock.advance(3)
    for version in ("v1", "v1beta", "v1beta3"):
        api.get(f"/{version}/{gemini['name']}", params=params)
        api.get(f"/{version}/{palm['name']}", params=params)
        api.get(f"/{version}/tunedModels/tour/operations", params=params)
        api.get(f"/{version}/models", params=params)
    api.post(f"/v1/{cancelled['name']}:cancel", {}, params=params)
    clock.advance(1000)
    for version in ("v1", "v1beta", "v1beta3"):
        api.get(f"/{version}/{gemini['name']}", params=params)
        api.get(f"/{version}/{palm['name']}", params=params)
        api.get(f"/{version}/{cancelled['name']}", params=params)
    api.get("/v1/operations", params=params)
    api.request("DELETE", "/v1/operations/x", expect=404, params=params)
    for version in ("v1beta", "v1beta3"):
        api.get(f"/{version}/tunedModels/tour", params=params)
        api.get(f"/{version}/tunedModels", params={"pageSize": 1, **params})
        api.patch(
            f"/{version}/tunedModels/tour",
            {"description": "d"},
            params={"updateMask": "description", **params},
        )
        api.get(f"/{version}/models/text-bison-001", params=params)
        api.post(
            f"/{version}/tunedModels/tour-palm:generateText",
            {"prompt": {"text": "3"}, "candidateCount": 2},
            params=params,
        )
        api.post(
            f"/{version}/models/text-bison-001:countTextTokens", {"prompt": {"text": "3"}}, params=params
        )
        permission = api.post(
            f"/{version}/tunedModels/tour/permissions",
            {"granteeType": "GROUP", "emailAddress": f"{version}@example.com", "role": "READER"},
            params=params,
        )
        api.get(f"/{version}/{permission['name']}", params=params)
        api.get(f"/{version}/tunedModels/tour/permissions", params=params)
        api.patch(
            f"/{version}/{permission['name']}", {"role": "WRITER"}, params={"updateMask": "role", **params}
        )
        api.delete(f"/{version}/{permission['name']}", params=params)
    api.post("/v1beta/tunedModels/tour:transferOwnership", {"emailAddress": "new@example.com"}, params=params)
    for version in ("v1", "v1beta"):
        api.get(f"/{version}/models/gemini-1.0-pro-001", params=params)
        api.post(f"/{version}/tunedModels/tour:generateContent", contents, params=params)
        api.post(f"/{version}/models/gemini-1.0-pro-001:generateContent", contents, params=params)
        api.post(f"/{version}/models/gemini-1.0-pro-001:countTokens", contents, params=params)
        api.request(
            "POST", f"/{version}/tunedModels/tour:streamGenerateContent", json=contents, params=params
        )
        api.request(
            "POST", f"/{version}/tunedModels/tour:streamGenerateContent", json=contents, params={"alt": "sse"}
        )
    for name in ("tour", "tour-palm", "tour-cancel"):
        api.delete(f"/v1beta/tunedModels/{name}", params=params)


@pytest.mark.parametrize("int_enums", [False, True])
def test_tour_of_every_rpc_parses_strictly(api: Api, clock: FakeClock, int_enums: bool) -> None:
    start = len(COLLECTED)
    _tour(api, clock, int_enums)
    mine = COLLECTED[start:]
    served = {item.rpc for item in mine if item.status < 400}
    expected = {route.rpc for route in ROUTES} - {"DeleteOperation"}
    assert served == expected
    assert any(item.rpc == "DeleteOperation" and item.status == 404 for item in mine)
    for item in mine:
        strict_parse(item)


def test_everything_collected_parses_strictly() -> None:
    """Re-parse every response of this session (all emulator tests that ran before this one)."""
    assert COLLECTED, "no responses were collected"
    for item in COLLECTED:
        strict_parse(item)
    counts = Counter((item.rpc, item.status < 400) for item in COLLECTED)
    assert counts[("GetOperation", True)] > 0


def test_a_wrong_shape_is_caught() -> None:
    """The strict parser used above does reject unknown fields and defaults."""
    bad = Collected(
        "GET",
        "/v1beta/tunedModels/x",
        "GetTunedModel",
        "v1beta",
        200,
        '{"name": "x", "colour": 1}',
        "application/json",
    )
    with pytest.raises(Exception, match="colour"):
        strict_parse(bad)
    zero = Collected(
        "GET",
        "/v1/tunedModels/x/operations/y",
        "GetOperation",
        "v1",
        200,
        '{"name": "x", "done": false}',
        "application/json",
    )
    with pytest.raises(AssertionError, match="default false"):
        strict_parse(zero)
    v1beta3_meta = (
        '{"name": "o", "metadata": {"@type": '
        '"type.googleapis.com/google.ai.generativelanguage.v1beta3.CreateTunedModelMetadata", '
        '"totalSteps": 2}}'
    )
    strict_parse(
        Collected(
            "GET",
            "/v1/tunedModels/x/operations/y",
            "GetOperation",
            "v1",
            200,
            v1beta3_meta,
            "application/json",
        )
    )


@pytest.mark.parametrize(
    ("field", "enum"),
    [
        ("state", v1beta.TunedModel.State),
        ("granteeType", v1beta.Permission.GranteeType),
        ("role", v1beta.Permission.Role),
        ("category", v1beta.HarmCategory),
        ("probability", v1beta.SafetyRating.HarmProbability),
        ("finishReason", v1beta.Candidate.FinishReason),
        ("blockReason", v1beta.GenerateContentResponse.PromptFeedback.BlockReason),
        ("reason", v1beta.ContentFilter.BlockedReason),
        ("threshold", v1beta.SafetySetting.HarmBlockThreshold),
    ],
)
def test_enum_numbers_match_the_official_types(field: str, enum: type) -> None:
    official = {member.name: member.value for member in enum}  # type: ignore[attr-defined]
    for name, number in ENUM_NUMBERS[field].items():
        assert official[name] == number, (field, name)


def test_enum_numbers_agree_across_versions() -> None:
    v1_categories = {m.name: m.value for m in v1.HarmCategory.__members__.values()}
    palm_categories = {m.name: m.value for m in v1beta3.HarmCategory.__members__.values()}
    assert len(palm_categories) == 7
    for name, number in ENUM_NUMBERS["category"].items():
        assert v1_categories.get(name, number) == number
        assert palm_categories.get(name, number) == number
    states = {m.name: m.value for m in v1beta3.TunedModel.State.__members__.values()}
    assert states == ENUM_NUMBERS["state"]
