"""List with real pagination and filter, patch with (and without) updateMask, delete, operations
and base-model listing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.emulator_support import Api, FakeClock, tuned_model_body


def _all_pages(api: Api, path: str, key: str, **params: Any) -> tuple[list[str], int]:
    names: list[str] = []
    pages = 0
    token = None
    while True:
        query = dict(params)
        if token:
            query["pageToken"] = token
        page = api.get(path, params=query)
        pages += 1
        names += [item["name"] for item in page.get(key, [])]
        token = page.get("nextPageToken")
        if not token:
            return names, pages


def test_pagination_default_and_custom_sizes(api: Api, clock: FakeClock) -> None:
    created = []
    for index in range(23):
        body = tuned_model_body(display_name=f"model {index:02d}")
        created.append(
            api.post("/v1beta/tunedModels", body, params={"tunedModelId": f"m-{index:02d}"})["metadata"][
                "tunedModel"
            ]
        )
        clock.advance(0.001)
    first = api.get("/v1beta/tunedModels")
    assert len(first["tunedModels"]) == 10  # default pageSize
    names, pages = _all_pages(api, "/v1beta/tunedModels", "tunedModels")
    assert (names, pages) == (created, 3)
    names, pages = _all_pages(api, "/v1beta/tunedModels", "tunedModels", pageSize=7)
    assert (names, pages) == (created, 4)
    assert (
        len(api.get("/v1beta/tunedModels", params={"pageSize": 5000})["tunedModels"]) == 23
    )  # capped at 1000
    exact = api.get("/v1beta/tunedModels", params={"pageSize": 23})
    assert "nextPageToken" not in exact
    # page size may change between pages, other parameters may not
    token = api.get("/v1beta/tunedModels", params={"pageSize": 3})["nextPageToken"]
    assert len(api.get("/v1beta/tunedModels", params={"pageSize": 4, "pageToken": token})["tunedModels"]) == 4
    error = api.error("GET", "/v1beta/tunedModels", 400, params={"pageToken": token, "filter": "model"})
    assert "page token does not match" in error["message"]
    assert (
        api.error("GET", "/v1beta3/tunedModels", 400, params={"pageToken": token})["status"]
        == "INVALID_ARGUMENT"
    )
    assert (
        "Invalid page token"
        in api.error("GET", "/v1beta/tunedModels", 400, params={"pageToken": "garbage"})["message"]
    )
    assert (
        api.error("GET", "/v1beta/tunedModels", 400, params={"pageSize": -1})["status"] == "INVALID_ARGUMENT"
    )
    assert (
        api.error("GET", "/v1beta/tunedModels", 400, params={"pageSize": "ten"})["status"]
        == "INVALID_ARGUMENT"
    )


@pytest.mark.parametrize(
    "path", ["/v1beta/tunedModels", "/v1/operations", "/v1beta/models", "/v1beta/tunedModels/m/permissions"]
)
@pytest.mark.parametrize("size", ["2147483648", "99999999999999999999", "-2147483649"])
def test_page_size_out_of_int32_range_is_invalid(api: Api, path: str, size: str) -> None:
    api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "m"})
    error = api.error("GET", path, 400, params={"pageSize": size})
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == f"Invalid value at 'page_size' (TYPE_INT32), \"{size}\""
    assert api.get(path, params={"pageSize": "2147483647"}) is not None  # int32 max is accepted


def test_pagination_survives_a_deletion(api: Api, clock: FakeClock) -> None:
    names = []
    for index in range(6):
        names.append(
            api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": f"d-{index}"})[
                "metadata"
            ]["tunedModel"]
        )
        clock.advance(0.001)
    page = api.get("/v1beta/tunedModels", params={"pageSize": 3})
    api.delete(f"/v1beta/{names[1]}")
    rest = api.get("/v1beta/tunedModels", params={"pageSize": 3, "pageToken": page["nextPageToken"]})
    assert [m["name"] for m in rest["tunedModels"]] == names[3:]


def test_filter(api: Api) -> None:
    api.post(
        "/v1beta/tunedModels",
        {**tuned_model_body(display_name="Number Generator"), "description": "counts up"},
        params={"tunedModelId": "numbers"},
    )
    api.post(
        "/v1beta/tunedModels",
        {**tuned_model_body(display_name="Poet"), "description": "Writes NUMBER poems"},
        params={"tunedModelId": "poet"},
    )
    api.post("/v1beta/tunedModels", tuned_model_body(display_name="Chef"), params={"tunedModelId": "chef"})

    def names(flt: str) -> list[str]:
        return [
            m["name"] for m in api.get("/v1beta/tunedModels", params={"filter": flt}).get("tunedModels", [])
        ]

    assert names("number") == [
        "tunedModels/numbers",
        "tunedModels/poet",
    ]  # display name or description, any case
    assert names("number poems") == ["tunedModels/poet"]  # every term must match
    assert names('"counts up"') == ["tunedModels/numbers"]
    assert names("owner:me chef") == ["tunedModels/chef"]
    assert names("readers:everyone") == []
    assert names("sushi") == []
    assert (
        api.error("GET", "/v1beta/tunedModels", 400, params={"filter": "colour:red"})["status"]
        == "INVALID_ARGUMENT"
    )
    error = api.error("GET", "/v1beta3/tunedModels", 400, params={"filter": "number"})  # v1beta only
    assert 'Unknown name "filter"' in error["message"]


def test_patch_with_mask(api: Api, clock: FakeClock) -> None:
    api.post(
        "/v1beta/tunedModels", tuned_model_body(display_name="before"), params={"tunedModelId": "patchme"}
    )
    before = api.get("/v1beta/tunedModels/patchme")
    clock.advance(0.5)
    patched = api.patch(
        "/v1beta/tunedModels/patchme",
        {"displayName": "after", "description": "new", "temperature": 0.25},
        params={"updateMask": "displayName,temperature"},
    )
    assert patched["displayName"] == "after"
    assert patched["temperature"] == 0.25
    assert "description" not in patched  # not in the mask
    assert patched["updateTime"] > before["updateTime"]
    snake = api.patch(
        "/v1beta3/tunedModels/patchme",
        {"description": "via snake", "top_k": 7},
        params={"update_mask": "description,top_k"},
    )
    assert (snake["description"], snake["topK"]) == ("via snake", 7)
    cleared = api.patch("/v1beta/tunedModels/patchme", {}, params={"updateMask": "description"})
    assert "description" not in cleared
    assert api.get("/v1beta/tunedModels/patchme")["displayName"] == "after"


@pytest.mark.parametrize(
    ("mask", "pattern"),
    [
        ("baseModel", "immutable"),
        ("tuning_task.hyperparameters", "immutable"),
        ("tuningTask.trainingData", "immutable"),
        ("state", "output-only"),
        ("createTime", "output-only"),
        ("colour", "not a field"),
    ],
)
def test_patch_rejects_bad_masks(api: Api, mask: str, pattern: str) -> None:
    api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "masked"})
    error = api.error(
        "PATCH", "/v1beta/tunedModels/masked", 400, params={"updateMask": mask}, json={"displayName": "x"}
    )
    assert pattern in error["message"]
    assert error["status"] == "INVALID_ARGUMENT"


def test_patch_infers_the_mask_in_v1beta(api: Api) -> None:
    api.post(
        "/v1beta/tunedModels",
        tuned_model_body(display_name="old", epochCount=5, batchSize=2, learningRate=0.001),
        params={"tunedModelId": "infer"},
    )
    current = api.get("/v1beta/tunedModels/infer")
    # The whole model sent back (as SDKs do): output-only and unchanged immutable fields are fine.
    body = {**current, "displayName": "new", "readerProjectNumbers": ["1234567890123"]}
    body["tuningTask"]["hyperparameters"]["learningRate"] = 0.0010000000474974513  # float32 widened
    patched = api.patch("/v1beta/tunedModels/infer", body)
    assert patched["displayName"] == "new"
    assert patched["readerProjectNumbers"] == ["1234567890123"]  # int64 as strings
    changed = dict(body, baseModel="models/gemini-1.5-flash-001-tuning")
    assert "immutable" in api.error("PATCH", "/v1beta/tunedModels/infer", 400, json=changed)["message"]
    hyper = {"tuningTask": {"hyperparameters": {"epochCount": 9}}}
    assert "immutable" in api.error("PATCH", "/v1beta/tunedModels/infer", 400, json=hyper)["message"]
    data: dict[str, Any] = {"tuningTask": {"trainingData": {"examples": {"examples": []}}}}
    assert "immutable" in api.error("PATCH", "/v1beta/tunedModels/infer", 400, json=data)["message"]
    error = api.error(
        "PATCH", "/v1beta3/tunedModels/infer", 400, json={"displayName": "x"}
    )  # required in v1beta3
    assert "update_mask is required" in error["message"]
    assert (
        api.error("PATCH", "/v1beta/tunedModels/infer", 400, json={"temperature": 3})["status"]
        == "INVALID_ARGUMENT"
    )
    assert (
        api.error("PATCH", "/v1beta/tunedModels/missing", 404, json={"displayName": "x"})["status"]
        == "NOT_FOUND"
    )


def test_delete(api: Api) -> None:
    operation = api.post(
        "/v1beta3/tunedModels",
        tuned_model_body(base_model="models/text-bison-001"),
        params={"tunedModelId": "gone"},
    )
    assert api.delete("/v1beta3/tunedModels/gone") == {}
    assert api.error("GET", "/v1beta3/tunedModels/gone", 404)["status"] == "NOT_FOUND"
    assert api.error("GET", f"/v1/{operation['name']}", 404)["status"] == "NOT_FOUND"
    assert api.error("DELETE", "/v1beta/tunedModels/gone", 404)["status"] == "NOT_FOUND"


def test_operations_lists(api: Api, clock: FakeClock) -> None:
    first = api.post("/v1beta/tunedModels", tuned_model_body(), params={"tunedModelId": "op-a"})
    clock.advance(0.001)
    second = api.post(
        "/v1beta3/tunedModels",
        tuned_model_body(base_model="models/text-bison-001"),
        params={"tunedModelId": "op-b"},
    )
    for version in ("v1", "v1beta", "v1beta3"):
        listed = api.get(f"/{version}/tunedModels/op-a/operations")
        assert [op["name"] for op in listed["operations"]] == [first["name"]]
    everything = api.get("/v1/operations")
    assert [op["name"] for op in everything["operations"]] == [first["name"], second["name"]]
    names, pages = _all_pages(api, "/v1/operations", "operations", pageSize=1)
    assert (names, pages) == ([first["name"], second["name"]], 2)
    clock.advance(100)
    assert api.get("/v1/operations", params={"filter": "done=true"})["operations"][0]["done"] is True
    assert api.get("/v1/operations", params={"filter": "done = false"}) == {}
    assert (
        api.error("GET", "/v1/operations", 400, params={"filter": "name=x"})["status"] == "INVALID_ARGUMENT"
    )
    assert api.error("DELETE", "/v1/operations/some-op", 404)["status"] == "NOT_FOUND"
    assert api.error("GET", "/v1beta/tunedModels/nope/operations", 404)["status"] == "NOT_FOUND"


def test_base_models(api: Api) -> None:
    names, _ = _all_pages(api, "/v1beta/models", "models")
    assert {
        "models/gemini-1.0-pro-001",
        "models/gemini-1.5-flash-001-tuning",
        "models/text-bison-001",
    } <= set(names)
    assert "models/text-bison-001" in _all_pages(api, "/v1beta3/models", "models")[0]
    assert "models/text-bison-001" not in _all_pages(api, "/v1/models", "models")[0]
    assert "models/gemini-1.0-pro-001" not in _all_pages(api, "/v1beta3/models", "models")[0]
    paged, pages = _all_pages(api, "/v1beta/models", "models", pageSize=2)
    assert paged == names
    assert pages == 3
    bison = api.get("/v1beta3/models/text-bison-001")
    assert "createTunedModel" in bison["supportedGenerationMethods"]
    assert (bison["temperature"], bison["topP"], bison["topK"]) == (0.7, 0.95, 40)
    for name in (
        "models/gemini-1.0-pro-001",
        "models/gemini-1.5-flash-001-tuning",
        "models/gemini-1.5-flash-001",
    ):
        assert "createTunedModel" in api.get(f"/v1beta/{name}")["supportedGenerationMethods"]
    assert api.get("/v1/models/gemini-1.0-pro-001")["name"] == "models/gemini-1.0-pro-001"
    assert api.error("GET", "/v1beta/models/no-such-model", 404)["status"] == "NOT_FOUND"
