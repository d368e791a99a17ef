"""Google's own google-cloud-storage client against the emulator (``STORAGE_EMULATOR_HOST``):
buckets, multipart and resumable uploads, metadata and media reads, listing, delete, checksums,
anonymous access while no credential is configured and bearer tokens from ``/token``; every JSON
answer is checked against the ``storage.v1`` discovery document."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.emulator.vertex.vertex_support import PROJECT, access_token, check_schema, credentials
from tuning_api_emulator import Emulator


@pytest.fixture
def client(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> storage.Client:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    return storage.Client(project=PROJECT, credentials=credentials(emulator.url))


def _checked(url: str, expect: int = 200, **kw: object) -> dict[str, object]:
    response = requests.get(url, timeout=30, **kw)  # type: ignore[arg-type]
    assert response.status_code == expect, response.text
    body = response.json()
    return dict(body)


def test_upload_read_list_and_delete_with_the_official_client(
    client: storage.Client, emulator: Emulator
) -> None:
    bucket = client.create_bucket("tuning-data")
    assert bucket.name == "tuning-data"
    assert client.get_bucket("tuning-data").location == "US"
    with pytest.raises(exceptions.Conflict):
        client.create_bucket("tuning-data")

    small = bucket.blob("sft/train.jsonl")
    small.upload_from_string('{"contents": []}\n', content_type="application/jsonl")  # multipart
    assert small.size == 17
    assert small.generation
    large = bucket.blob("sft/big.jsonl")
    large.chunk_size = 256 * 1024  # resumable, in three chunks
    payload = bytes(range(256)) * 2600
    large.upload_from_string(payload, content_type="application/octet-stream")
    bucket.blob("other/readme.txt").upload_from_string("hello", content_type="text/plain")

    assert client.bucket("tuning-data").blob("sft/big.jsonl").download_as_bytes() == payload  # checksummed
    assert bucket.blob("other/readme.txt").download_as_bytes(start=1, end=3) == b"ell"
    fetched = bucket.get_blob("sft/train.jsonl")
    assert fetched is not None
    assert (fetched.content_type, fetched.size) == ("application/jsonl", 17)
    assert [b.name for b in client.list_blobs("tuning-data", prefix="sft/")] == [
        "sft/big.jsonl",
        "sft/train.jsonl",
    ]
    listing = client.list_blobs("tuning-data", delimiter="/")
    assert list(listing) == []
    assert listing.prefixes == {"other/", "sft/"}
    paged = client.list_blobs("tuning-data", max_results=None, page_size=1)
    assert [b.name for b in paged] == ["other/readme.txt", "sft/big.jsonl", "sft/train.jsonl"]

    small.delete()
    with pytest.raises(exceptions.NotFound):
        bucket.blob("sft/train.jsonl").download_as_bytes()
    with pytest.raises(exceptions.NotFound):
        client.get_bucket("no-such-bucket")
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("other/readme.txt").upload_from_string("x", if_generation_match=0)

    objects = _checked(f"{emulator.url}/storage/v1/b/tuning-data/o")
    check_schema(objects, {"$ref": "Objects"}, "storage.v1")
    check_schema(_checked(f"{emulator.url}/storage/v1/b/tuning-data"), {"$ref": "Bucket"}, "storage.v1")
    partial = _checked(f"{emulator.url}/storage/v1/b/tuning-data/o", params={"fields": "items(name)"})
    assert partial == {"items": [{"name": "other/readme.txt"}, {"name": "sft/big.jsonl"}]}


def test_media_upload_and_object_names_with_slashes(emulator: Emulator) -> None:
    base = emulator.url
    assert requests.post(
        f"{base}/storage/v1/b", params={"project": PROJECT}, json={"name": "bk1"}, timeout=30
    ).ok
    uploaded = requests.post(
        f"{base}/upload/storage/v1/b/bk1/o",
        params={"uploadType": "media", "name": "a/b c.jsonl"},
        data=b"123",
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert uploaded.status_code == 200
    check_schema(uploaded.json(), {"$ref": "Object"}, "storage.v1")
    assert uploaded.json()["crc32c"] == "EHsvsg=="  # CRC32C of b"123", as Cloud Storage prints it
    media = requests.get(f"{base}/storage/v1/b/bk1/o/a%2Fb%20c.jsonl", params={"alt": "media"}, timeout=30)
    assert media.content == b"123"
    assert "crc32c=EHsvsg==" in media.headers["x-goog-hash"]
    error = _checked(f"{base}/storage/v1/b/bk1/o/missing", expect=404)
    assert error == {
        "error": {
            "code": 404,
            "message": "No such object: bk1/missing",
            "errors": [{"message": "No such object: bk1/missing", "domain": "global", "reason": "notFound"}],
        }
    }
    bad = requests.post(
        f"{base}/storage/v1/b", params={"project": PROJECT}, json={"name": "Bad_Name"}, timeout=30
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "Invalid bucket name: 'Bad_Name'"


def test_anonymous_access_works_while_no_credential_is_configured(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    anonymous = storage.Client()  # the client goes anonymous with STORAGE_EMULATOR_HOST set
    assert isinstance(anonymous._credentials, AnonymousCredentials)
    anonymous.create_bucket("anon-bucket").blob("x.txt").upload_from_string("data")
    assert anonymous.bucket("anon-bucket").blob("x.txt").download_as_bytes() == b"data"
    request = emulator.request_log[-1]
    assert "authorization" not in {k.lower() for k in request["headers"]}


def test_configured_credentials_require_a_configured_or_issued_token(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.emulator.vertex.vertex_support import REFRESH_TOKEN

    emulator = make_emulator(tokens=["static-token"], refresh_tokens=[REFRESH_TOKEN])
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    anonymous = requests.post(
        f"{emulator.url}/storage/v1/b", params={"project": PROJECT}, json={"name": "locked"}, timeout=30
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"].startswith(
        "Anonymous caller does not have storage.buckets.create access to the Google Cloud Storage bucket."
    )
    client = storage.Client(project=PROJECT, credentials=credentials(emulator.url))  # refreshes at /token
    client.create_bucket("locked").blob("x.txt").upload_from_string("data")
    assert client.bucket("locked").blob("x.txt").download_as_bytes() == b"data"
    static = requests.get(
        f"{emulator.url}/storage/v1/b/locked", headers={"Authorization": "Bearer static-token"}, timeout=30
    )
    assert static.status_code == 200
    wrong = requests.get(
        f"{emulator.url}/storage/v1/b/locked", headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "Invalid Credentials"
    assert access_token(emulator.url).startswith("ya29.")


def test_the_pure_python_crc32c_matches_googles() -> None:
    import google_crc32c

    from tuning_api_emulator.storage_data import crc32c_python

    for data in (b"", b"123", bytes(range(256)) * 40):
        assert crc32c_python(data) == google_crc32c.value(data)


def test_an_older_generation_does_not_exist(client: storage.Client) -> None:
    blob = client.create_bucket("gens").blob("a.txt")
    blob.upload_from_string("one")
    first = blob.generation
    blob.upload_from_string("two")
    assert blob.generation != first
    assert client.bucket("gens").blob("a.txt").download_as_bytes() == b"two"
    with pytest.raises(exceptions.NotFound):
        client.bucket("gens").blob("a.txt", generation=first).download_as_bytes()
