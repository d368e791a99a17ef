"""Permissions: the owner's permission exists; create/get/list/patch/delete; transferOwnership."""

from __future__ import annotations

import pytest

from tests.emulator.emulator_support import Api, tuned_model_body


@pytest.fixture
def shared(api: Api) -> str:
    api.post(
        "/v1beta/tunedModels", tuned_model_body(display_name="shared"), params={"tunedModelId": "shared"}
    )
    return "tunedModels/shared"


def test_owner_permission_exists(api: Api, shared: str) -> None:
    listed = api.get(f"/v1beta/{shared}/permissions")["permissions"]
    assert len(listed) == 1
    owner = listed[0]
    assert owner["role"] == "OWNER"
    assert owner["granteeType"] == "USER"
    assert owner["name"].startswith(f"{shared}/permissions/")
    assert api.get(f"/v1beta3/{owner['name']}") == owner


def test_permission_lifecycle(api: Api, shared: str) -> None:
    reader = api.post(
        f"/v1beta/{shared}/permissions",
        {"granteeType": "USER", "emailAddress": "ana@example.com", "role": "READER"},
    )
    assert reader["role"] == "READER"
    assert reader["emailAddress"] == "ana@example.com"
    group = api.post(
        f"/v1beta3/{shared}/permissions",
        {"grantee_type": "GROUP", "email_address": "team@example.com", "role": 2},
    )
    assert group["role"] == "WRITER"  # enums accepted as numbers (as SDKs send them)
    everyone = api.post(f"/v1beta/{shared}/permissions", {"granteeType": "EVERYONE", "role": "READER"})
    assert "emailAddress" not in everyone
    inferred = api.post(f"/v1beta/{shared}/permissions", {"emailAddress": "bo@example.com", "role": "READER"})
    assert inferred["granteeType"] == "USER"  # optional in v1beta

    pages = api.get(f"/v1beta/{shared}/permissions", params={"pageSize": 3})
    rest = api.get(
        f"/v1beta/{shared}/permissions", params={"pageSize": 3, "pageToken": pages["nextPageToken"]}
    )
    assert len(pages["permissions"]) + len(rest["permissions"]) == 5

    updated = api.patch(f"/v1beta/{reader['name']}", {"role": "WRITER"}, params={"updateMask": "role"})
    assert updated["role"] == "WRITER"
    assert api.get(f"/v1beta/{reader['name']}")["role"] == "WRITER"
    assert api.delete(f"/v1beta/{reader['name']}") == {}
    assert api.error("GET", f"/v1beta/{reader['name']}", 404)["status"] == "NOT_FOUND"

    listed = api.get("/v1beta/tunedModels", params={"filter": "readers:everyone"})
    assert [m["name"] for m in listed["tunedModels"]] == [shared]


@pytest.mark.parametrize(
    ("version", "body", "status", "pattern"),
    [
        ("v1beta", {"granteeType": "USER", "emailAddress": "a@example.com"}, 400, "role is required"),
        (
            "v1beta",
            {"granteeType": "USER", "emailAddress": "a@example.com", "role": "OWNER"},
            400,
            "transferOwnership",
        ),
        ("v1beta", {"granteeType": "USER", "role": "READER"}, 400, "email_address is required"),
        (
            "v1beta",
            {"granteeType": "EVERYONE", "emailAddress": "a@example.com", "role": "READER"},
            400,
            "must be empty",
        ),
        ("v1beta", {"granteeType": "EVERYONE", "role": "WRITER"}, 400, "READER role"),
        ("v1beta3", {"emailAddress": "a@example.com", "role": "READER"}, 400, "grantee_type is required"),
        (
            "v1beta",
            {"granteeType": "ROBOT", "emailAddress": "a@example.com", "role": "READER"},
            400,
            "GranteeType",
        ),
        (
            "v1beta",
            {"granteeType": "USER", "emailAddress": "not-an-email", "role": "READER"},
            400,
            "not an email",
        ),
    ],
)
def test_permission_create_errors(
    api: Api, shared: str, version: str, body: dict[str, str], status: int, pattern: str
) -> None:
    error = api.error("POST", f"/{version}/{shared}/permissions", status, json=body)
    assert pattern in error["message"]


def test_permission_conflicts_and_owner_rules(api: Api, shared: str) -> None:
    body = {"granteeType": "USER", "emailAddress": "ana@example.com", "role": "READER"}
    reader = api.post(f"/v1beta/{shared}/permissions", body)
    assert api.error("POST", f"/v1beta/{shared}/permissions", 409, json=body)["status"] == "ALREADY_EXISTS"
    owner = next(p for p in api.get(f"/v1beta/{shared}/permissions")["permissions"] if p["role"] == "OWNER")
    assert api.error("DELETE", f"/v1beta/{owner['name']}", 400)["status"] == "FAILED_PRECONDITION"
    assert (
        "owner"
        in api.error(
            "PATCH", f"/v1beta/{owner['name']}", 400, params={"updateMask": "role"}, json={"role": "READER"}
        )["message"]
    )
    assert (
        "update_mask is required"
        in api.error("PATCH", f"/v1beta/{reader['name']}", 400, json={"role": "WRITER"})["message"]
    )
    assert (
        "only contain role"
        in api.error(
            "PATCH",
            f"/v1beta/{reader['name']}",
            400,
            params={"updateMask": "emailAddress"},
            json={"role": "WRITER"},
        )["message"]
    )
    assert (
        api.error(
            "PATCH", f"/v1beta/{reader['name']}", 400, params={"updateMask": "role"}, json={"role": "OWNER"}
        )["status"]
        == "INVALID_ARGUMENT"
    )
    assert api.error("GET", "/v1beta/tunedModels/nope/permissions", 404)["status"] == "NOT_FOUND"


def test_transfer_ownership(api: Api, shared: str) -> None:
    api.post(
        f"/v1beta/{shared}/permissions",
        {"granteeType": "USER", "emailAddress": "ana@example.com", "role": "READER"},
    )
    assert api.post(f"/v1beta/{shared}:transferOwnership", {"emailAddress": "ana@example.com"}) == {}
    roles = {
        p.get("emailAddress"): p["role"] for p in api.get(f"/v1beta/{shared}/permissions")["permissions"]
    }
    assert roles["ana@example.com"] == "OWNER"
    assert list(roles.values()).count("OWNER") == 1
    assert sorted(roles.values()) == ["OWNER", "WRITER"]  # the previous owner became a WRITER
    assert api.get("/v1beta/tunedModels", params={"filter": "owner:me"}) == {}
    assert len(api.get("/v1beta/tunedModels", params={"filter": "writers:me"})["tunedModels"]) == 1
    assert api.post(f"/v1beta3/{shared}:transferOwnership", {"email_address": "new@example.com"}) == {}
    roles = {
        p.get("emailAddress"): p["role"] for p in api.get(f"/v1beta/{shared}/permissions")["permissions"]
    }
    assert (roles["new@example.com"], roles["ana@example.com"]) == ("OWNER", "WRITER")
    assert (
        "email_address is required"
        in api.error("POST", f"/v1beta/{shared}:transferOwnership", 400, json={})["message"]
    )
