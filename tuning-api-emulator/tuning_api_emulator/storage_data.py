"""Cloud Storage buckets and objects as the emulator keeps them (no HTTP here; see :mod:`.storage`).

Objects keep their bytes (base64 in the state file), content type, generation, custom metadata and
the two checksums Google reports: ``md5Hash`` and ``crc32c`` (both base64, big-endian for CRC32C).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from tuning_api_emulator.jsonio import timestamp

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """The CRC32C (Castagnoli) of ``data`` (``google_crc32c``'s C code when it is installed)."""
    try:
        import google_crc32c  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        return int(google_crc32c.value(data))
    return crc32c_python(data)


def crc32c_python(data: bytes) -> int:
    """The CRC32C of ``data`` in pure Python (table-driven; about 10 MB/s)."""
    crc = 0xFFFFFFFF
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def checksums(data: bytes) -> tuple[str, str]:
    """``(md5Hash, crc32c)`` of ``data`` as Cloud Storage renders them (base64)."""
    md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    crc = base64.b64encode(crc32c(data).to_bytes(4, "big")).decode()
    return md5, crc


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid bucket name (``None`` when it is)."""
    if not _BUCKET_NAME.match(name) or ".." in name or (len(name) > 63 and "." not in name):
        return f"Invalid bucket name: '{name}'"
    return None


@dataclass
class Bucket:
    """One bucket."""

    name: str
    project_number: str
    create_time: float
    location: str = "US"
    storage_class: str = "STANDARD"
    labels: dict[str, str] = field(default_factory=dict)

    def render(self, base_url: str) -> dict[str, Any]:
        """The ``storage#bucket`` resource."""
        out: dict[str, Any] = {
            "kind": "storage#bucket",
            "id": self.name,
            "selfLink": f"{base_url}/storage/v1/b/{self.name}",
            "projectNumber": self.project_number,
            "name": self.name,
            "timeCreated": timestamp(self.create_time),
            "updated": timestamp(self.create_time),
            "metageneration": "1",
            "location": self.location,
            "locationType": "multi-region" if self.location in ("US", "EU", "ASIA") else "region",
            "storageClass": self.storage_class,
            "etag": "CAE=",
        }
        if self.labels:
            out["labels"] = dict(self.labels)
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoredObject:
    """One object (its current generation only)."""

    bucket: str
    name: str
    data: bytes
    content_type: str
    generation: int
    create_time: float
    metadata: dict[str, str] = field(default_factory=dict)
    md5_hash: str = ""  # computed once, when empty
    crc32c: str = ""

    def __post_init__(self) -> None:
        if not self.md5_hash or not self.crc32c:
            self.md5_hash, self.crc32c = checksums(self.data)

    @property
    def key(self) -> str:
        return f"{self.bucket}/{self.name}"

    def render(self, base_url: str) -> dict[str, Any]:
        """The ``storage#object`` resource."""
        from urllib.parse import quote

        md5, crc = self.md5_hash, self.crc32c
        quoted = quote(self.name, safe="")
        out: dict[str, Any] = {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base_url}/storage/v1/b/{self.bucket}/o/{quoted}",
            "mediaLink": f"{base_url}/download/storage/v1/b/{self.bucket}/o/{quoted}"
            f"?generation={self.generation}&alt=media",
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": "1",
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(len(self.data)),
            "md5Hash": md5,
            "crc32c": crc,
            "etag": base64.b64encode(self.generation.to_bytes(8, "big")).decode().rstrip("="),
            "timeCreated": timestamp(self.create_time),
            "updated": timestamp(self.create_time),
            "timeStorageClassUpdated": timestamp(self.create_time),
        }
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["data"] = base64.b64encode(self.data).decode()
        return values

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredObject:
        values = dict(data)
        values["data"] = base64.b64decode(values["data"])
        return cls(**values)


def parse_gs_uri(uri: str) -> tuple[str, str] | None:
    """``gs://bucket/object`` -> ``(bucket, object)``; ``None`` when ``uri`` is not of that form."""
    if not uri.startswith("gs://"):
        return None
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket or not name or bucket_name_problem(bucket):
        return None
    return bucket, name
