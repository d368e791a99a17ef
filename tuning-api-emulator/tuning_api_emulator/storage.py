"""A Cloud Storage JSON API subset at the emulator's address (``STORAGE_EMULATOR_HOST``).

==========================================================  =========================================
``POST /storage/v1/b?project=P``                            create a bucket (``GET`` lists them)
``GET | DELETE /storage/v1/b/{bucket}``                     get, delete (when empty)
``GET /storage/v1/b/{bucket}/o?prefix=&delimiter=``         list objects (``maxResults``, ``pageToken``)
``GET | DELETE /storage/v1/b/{bucket}/o/{object}``          metadata (``alt=media``: the bytes), delete
``GET /download/storage/v1/b/{bucket}/o/{object}``          the bytes (``alt=media``; ``Range`` works)
``POST /upload/storage/v1/b/{bucket}/o?uploadType=``        ``media``, ``multipart`` or ``resumable``
``PUT | DELETE /upload/...?upload_id=``                     resumable chunks (``308`` until complete)
==========================================================  =========================================

Errors are the Cloud Storage envelope ``{"error": {"code", "message", "errors": [{"message",
"domain", "reason"}]}}``. Credentials: while the emulator has none configured, anonymous calls
and any bearer token pass (as other storage emulators behave); once configured, a configured or
issued bearer token is required (401 otherwise). ``ifGenerationMatch`` is honoured (412).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

from aiohttp import web

from tuning_api_emulator import auth
from tuning_api_emulator.errors import StatusError, bad_request, failed_precondition, not_found
from tuning_api_emulator.jsonio import dumps
from tuning_api_emulator.partial import parse_fields, select
from tuning_api_emulator.storage_data import Bucket, StoredObject, bucket_name_problem
from tuning_api_emulator.vertex_jobs import project_number

if TYPE_CHECKING:
    from tuning_api_emulator.runtime import Runtime

log = logging.getLogger("tuning_api_emulator")
PREFIXES = ("/storage/v1/", "/upload/storage/v1/", "/download/storage/v1/")
_REASONS = {
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
}
_REASONS.update(
    {429: "rateLimitExceeded", 499: "clientClosedRequest", 500: "backendError", 503: "backendError"}
)
_ROUTES: tuple[tuple[str, str, re.Pattern[str], str], ...] = tuple(
    (rpc, method, re.compile(f"^{pattern}$"), permission)
    for rpc, method, pattern, permission in (
        ("storage.buckets.insert", "POST", r"/storage/v1/b", "storage.buckets.create"),
        ("storage.buckets.list", "GET", r"/storage/v1/b", "storage.buckets.list"),
        ("storage.buckets.get", "GET", r"/storage/v1/b/([^/]+)", "storage.buckets.get"),
        ("storage.buckets.delete", "DELETE", r"/storage/v1/b/([^/]+)", "storage.buckets.delete"),
        ("storage.objects.list", "GET", r"/storage/v1/b/([^/]+)/o", "storage.objects.list"),
        (
            "storage.objects.get",
            "GET",
            r"/(?:storage|download/storage)/v1/b/([^/]+)/o/(.+)",
            "storage.objects.get",
        ),
        ("storage.objects.delete", "DELETE", r"/storage/v1/b/([^/]+)/o/(.+)", "storage.objects.delete"),
        ("storage.objects.insert", "POST", r"/upload/storage/v1/b/([^/]+)/o", "storage.objects.create"),
        ("storage.objects.insert", "PUT", r"/upload/storage/v1/b/([^/]+)/o", "storage.objects.create"),
        ("storage.objects.insert", "DELETE", r"/upload/storage/v1/b/([^/]+)/o", "storage.objects.create"),
    )
)


def is_storage_path(path: str) -> bool:
    """Whether ``path`` belongs to the Cloud Storage surface."""
    return path.startswith(PREFIXES)


def _match(method: str, raw_path: str) -> tuple[str, str, list[str]]:
    """``(rpc, permission, decoded path groups)`` for a request (the path still percent-encoded)."""
    for rpc, verb, pattern, permission in _ROUTES:
        found = pattern.match(raw_path)
        if found and verb == method:
            return rpc, permission, [unquote(group) for group in found.groups()]
    raise StatusError("NOT_FOUND", "Not Found")


def rpc_of(method: str, raw_path: str) -> str | None:
    """The rpc name (``storage.objects.get``, ...) of a request, if it has a route."""
    try:
        return _match(method, raw_path.partition("?")[0])[0]
    except StatusError:
        return None


@dataclass
class Upload:
    """A resumable upload session."""

    bucket: str
    name: str
    content_type: str
    metadata: dict[str, str]
    if_generation_match: str | None
    data: bytearray = field(default_factory=bytearray)


def _error(err: StatusError) -> web.Response:
    status = err.http_status
    entry = {"message": err.message, "domain": "global", "reason": _REASONS.get(status, "invalid")}
    body = {"error": {"code": status, "message": err.message, "errors": [entry]}}
    return web.Response(status=status, text=dumps(body), content_type="application/json", headers=err.headers)


def _json(
    body: Any, query: dict[str, str], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    expression = query.get("fields", "")
    if expression.strip():
        body = select(body, parse_fields(expression))
    pretty = query.get("prettyPrint", "true").lower() not in ("false", "0")
    return web.Response(
        status=status, text=dumps(body, pretty=pretty), content_type="application/json", headers=headers or {}
    )


class StorageService:
    """The handlers, over the runtime's store (call them holding ``runtime.lock``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.uploads: dict[str, Upload] = {}

    @property
    def store(self) -> Any:
        return self.runtime.store

    def serve(self, request: web.Request, raw: bytes, fault: StatusError | None) -> web.Response:
        """Answer one Cloud Storage request whose body has been read."""
        try:
            if fault is not None:
                raise fault
            raw_path, _, query_string = request.raw_path.partition("?")
            query = dict(parse_qsl(query_string, keep_blank_values=True))
            rpc, permission, groups = _match(request.method, raw_path)
            self._check_auth(request, query, permission)
            base = f"{request.scheme}://{request.host}"
            with self.runtime.lock:
                return self._dispatch(rpc, request, raw, query, groups, base)
        except StatusError as err:
            return _error(err)
        except Exception:  # a bug in the emulator: answer like the service would, and say so in the log
            log.exception("emulator error serving %s %s", request.method, request.path)
            return _error(StatusError("INTERNAL", "Backend Error"))

    def _check_auth(self, request: web.Request, query: dict[str, str], permission: str) -> None:
        try:
            token = auth.bearer(request.headers, query)
        except StatusError:
            raise StatusError("UNAUTHENTICATED", "Invalid Credentials") from None
        accepted = self.runtime.accepted_tokens()
        if accepted is None:
            return
        if token is None:
            noun = "bucket" if permission.startswith("storage.buckets") else "object"
            raise StatusError(
                "UNAUTHENTICATED",
                f"Anonymous caller does not have {permission} access to the Google Cloud Storage {noun}. "
                f"Permission '{permission}' denied on resource (or it may not exist).",
            )
        if token not in accepted:
            raise StatusError("UNAUTHENTICATED", "Invalid Credentials")

    def _dispatch(
        self, rpc: str, request: web.Request, raw: bytes, query: dict[str, str], groups: list[str], base: str
    ) -> web.Response:
        now = self.runtime.clock()
        method = request.method
        if rpc == "storage.buckets.insert":
            return _json(self.insert_bucket(raw, query, now).render(base), query)
        if rpc == "storage.buckets.list":
            items = [b.render(base) for b in sorted(self.store.buckets.values(), key=lambda b: b.name)]
            return _json({"kind": "storage#buckets", **({"items": items} if items else {})}, query)
        bucket = self._bucket(groups[0])
        if rpc == "storage.buckets.get":
            return _json(bucket.render(base), query)
        if rpc == "storage.buckets.delete":
            if any(o.bucket == bucket.name for o in self.store.objects.values()):
                raise StatusError("ABORTED", "The bucket you tried to delete is not empty.")
            del self.store.buckets[bucket.name]
            self.store.save()
            return web.Response(status=204)
        if rpc == "storage.objects.list":
            return _json(self.list_objects(bucket, query, base), query)
        if rpc == "storage.objects.get":
            stored = self._object(bucket.name, groups[1], query.get("generation"))
            if query.get("alt") == "media" or request.path.startswith("/download/"):
                return self._media(stored, request)
            return _json(stored.render(base), query)
        if rpc == "storage.objects.delete":
            stored = self._object(bucket.name, groups[1])
            self._precondition(stored, query.get("ifGenerationMatch"))
            del self.store.objects[stored.key]
            self.store.save()
            return web.Response(status=204)
        if method == "POST":
            return self.upload(bucket, request, raw, query, now, base)
        return self.resumable_chunk(request, raw, query, now, base)

    # --- buckets and objects ----------------------------------------------------------------------

    def _bucket(self, name: str) -> Bucket:
        bucket = self.store.buckets.get(name)
        if bucket is None:
            raise not_found("The specified bucket does not exist.")
        return bucket

    def _object(self, bucket: str, name: str, generation: str | None = None) -> StoredObject:
        """The object (its current generation; another ``generation`` asked for does not exist)."""
        stored = self.store.objects.get(f"{bucket}/{name}")
        if stored is None or generation not in (None, str(stored.generation)):
            raise not_found(f"No such object: {bucket}/{name}")
        return stored

    def insert_bucket(self, raw: bytes, query: dict[str, str], now: float) -> Bucket:
        project = query.get("project", "")
        if not project:
            raise bad_request("Required parameter: project")
        body = self._json_body(raw)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("Required field: name")
        if (problem := bucket_name_problem(name)) is not None:
            raise bad_request(problem)
        if name in self.store.buckets:
            raise StatusError(
                "ALREADY_EXISTS",
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
        labels = body.get("labels") or {}
        bucket = Bucket(
            name=name,
            project_number=project_number(project),
            create_time=now,
            location=str(body.get("location", "US")).upper(),
            storage_class=str(body.get("storageClass", "STANDARD")),
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        )
        self.store.buckets[name] = bucket
        self.store.save()
        return bucket

    def list_objects(self, bucket: Bucket, query: dict[str, str], base: str) -> dict[str, Any]:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        try:
            size = int(query.get("maxResults") or 1000)
        except ValueError:
            raise bad_request(f"Invalid value for maxResults: {query['maxResults']}") from None
        if size <= 0:
            raise bad_request(f"Invalid value for maxResults: {size}")
        after = ""
        if token := query.get("pageToken"):
            try:
                after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            except ValueError:
                raise bad_request("Invalid pageToken.") from None
        entries: dict[str, StoredObject | None] = {}
        for stored in self.store.objects.values():
            if stored.bucket != bucket.name or not stored.name.startswith(prefix):
                continue
            rest = stored.name[len(prefix) :]
            if delimiter and delimiter in rest:
                entries[prefix + rest[: rest.index(delimiter) + len(delimiter)]] = None
            else:
                entries[stored.name] = stored
        names = [n for n in sorted(entries) if n > after]
        page = names[:size]
        out: dict[str, Any] = {"kind": "storage#objects"}
        prefixes = [n for n in page if entries[n] is None]
        items = [entry.render(base) for n in page if (entry := entries[n]) is not None]
        if prefixes:
            out["prefixes"] = prefixes
        if items:
            out["items"] = items
        if len(names) > size:
            out["nextPageToken"] = base64.urlsafe_b64encode(page[-1].encode()).decode().rstrip("=")
        return out

    @staticmethod
    def _media(stored: StoredObject, request: web.Request) -> web.Response:
        md5, crc = stored.md5_hash, stored.crc32c
        headers = {
            "x-goog-generation": str(stored.generation),
            "x-goog-metageneration": "1",
            "x-goog-hash": f"crc32c={crc},md5={md5}",
            "x-goog-stored-content-length": str(len(stored.data)),
            "ETag": f'"{md5}"',
        }
        data, status = stored.data, 200
        wanted = request.headers.get("Range", "")
        found = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
        if found:
            start = int(found.group(1))
            end = min(int(found.group(2)) if found.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data) and len(data) > 0:
                raise StatusError("OUT_OF_RANGE", "Request range not satisfiable", http_status=416)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        return web.Response(status=status, body=data, content_type=stored.content_type, headers=headers)

    # --- uploads ----------------------------------------------------------------------------------

    @staticmethod
    def _json_body(raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("Parse Error") from None
        if not isinstance(body, dict):
            raise bad_request("Parse Error")
        return body

    @staticmethod
    def _precondition(current: StoredObject | None, wanted: str | None) -> None:
        if wanted is None:
            return
        generation = str(current.generation) if current is not None else "0"
        if wanted != generation:
            raise StatusError(
                "FAILED_PRECONDITION",
                "At least one of the pre-conditions you specified did not hold.",
                http_status=412,
            )

    def _put(
        self, bucket: str, name: str, data: bytes, content_type: str, metadata: dict[str, str], now: float
    ) -> StoredObject:
        current = self.store.objects.get(f"{bucket}/{name}")
        generation = max(int(now * 1_000_000), current.generation + 1 if current is not None else 0)
        stored = StoredObject(bucket, name, bytes(data), content_type, generation, now, dict(metadata))
        self.store.objects[stored.key] = stored
        self.store.save()
        return stored

    @staticmethod
    def _metadata(body: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        name = body.get("name", "")
        content_type = body.get("contentType", "")
        metadata = body.get("metadata") or {}
        if not isinstance(name, str) or not isinstance(content_type, str) or not isinstance(metadata, dict):
            raise bad_request(
                "Invalid object metadata: name and contentType must be strings, metadata an object."
            )
        return name, content_type, {str(k): str(v) for k, v in metadata.items()}

    def upload(
        self, bucket: Bucket, request: web.Request, raw: bytes, query: dict[str, str], now: float, base: str
    ) -> web.Response:
        kind = query.get("uploadType", "")
        header_type = request.headers.get("Content-Type", "")
        if kind == "media":
            metadata: dict[str, str] = {}
            name, content_type = query.get("name", ""), header_type
            data = raw
        elif kind == "multipart":
            meta, data, media_type = _multipart(raw, header_type)
            name, content_type, metadata = self._metadata(meta)
            content_type = content_type or media_type
            name = name or query.get("name", "")
        elif kind == "resumable":
            name, content_type, metadata = self._metadata(self._json_body(raw))
            name = name or query.get("name", "")
            content_type = content_type or request.headers.get("X-Upload-Content-Type", "")
        else:
            raise bad_request(f"Invalid uploadType: {kind!r} (use media, multipart or resumable).")
        if not name:
            raise bad_request("Required field: name")
        self._precondition(self.store.objects.get(f"{bucket.name}/{name}"), query.get("ifGenerationMatch"))
        content_type = content_type or "application/octet-stream"
        if kind == "resumable":
            upload_id = secrets.token_urlsafe(16)
            self.uploads[upload_id] = Upload(
                bucket.name, name, content_type, metadata, query.get("ifGenerationMatch")
            )
            path = f"/upload/storage/v1/b/{quote(bucket.name)}/o"
            location = f"{base}{path}?uploadType=resumable&upload_id={upload_id}"
            return web.Response(status=200, headers={"Location": location, "X-GUploader-UploadID": upload_id})
        stored = self._put(bucket.name, name, data, content_type, metadata, now)
        return _json(stored.render(base), query)

    def resumable_chunk(
        self, request: web.Request, raw: bytes, query: dict[str, str], now: float, base: str
    ) -> web.Response:
        upload_id = query.get("upload_id", "")
        upload = self.uploads.get(upload_id)
        if upload is None:
            raise not_found(f"No such upload session: {upload_id}")
        if request.method == "DELETE":
            del self.uploads[upload_id]
            return web.Response(status=499)
        spec = request.headers.get("Content-Range", "").strip()
        found = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", spec)
        if found is None and spec:
            raise bad_request(f"Invalid Content-Range: {spec!r}")
        total = found.group(3) if found else "*"
        if found and found.group(1) is not None:
            start, end = int(found.group(1)), int(found.group(2))
            if end - start + 1 != len(raw):
                raise bad_request("The Content-Range does not match the body's length.")
            if start > len(upload.data):
                raise failed_precondition(
                    f"Invalid request: expected the next byte to be {len(upload.data)}."
                )
            del upload.data[start:]
            upload.data.extend(raw)
        elif not found:
            upload.data.extend(raw)
            total = str(len(upload.data))
        if total != "*" and len(upload.data) == int(total):
            self._precondition(
                self.store.objects.get(f"{upload.bucket}/{upload.name}"), upload.if_generation_match
            )
            stored = self._put(
                upload.bucket, upload.name, bytes(upload.data), upload.content_type, upload.metadata, now
            )
            del self.uploads[upload_id]
            return _json(stored.render(base), query)
        headers = {"Range": f"bytes=0-{len(upload.data) - 1}"} if upload.data else {}
        return web.Response(status=308, headers=headers)


def _multipart(raw: bytes, content_type: str) -> tuple[dict[str, Any], bytes, str]:
    """The JSON metadata, the media and its content type, of a ``multipart/related`` body."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or found is None:
        raise bad_request("A multipart upload needs Content-Type multipart/related with a boundary.")
    delimiter = b"--" + found.group(1).encode()
    parts = raw.split(delimiter)
    if len(parts) < 4:
        raise bad_request("A multipart upload needs two parts: the JSON metadata, then the media.")
    bodies, types = [], []
    for part in parts[1:3]:
        head, _, body = part.partition(b"\r\n\r\n")
        bodies.append(body[:-2] if body.endswith(b"\r\n") else body)
        typed = re.search(rb"(?im)^content-type:\s*([^\r\n]+)", head)
        types.append(typed.group(1).decode().strip() if typed else "")
    return StorageService._json_body(bodies[0]), bodies[1], types[1]
