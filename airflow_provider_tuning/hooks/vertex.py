"""``VertexTuningHook``: Vertex AI tuning jobs, tuned models and endpoints, and Cloud Storage uploads.

It reads a ``google_cloud_platform`` connection (see :mod:`.vertex_connection`) and sends every call
through the same transport as the Generative Language hook. A tuning job create takes no
client-chosen id, so it is never repeated after a connection error: the operator finds a lost
create by its labels instead (``list_tuning_jobs(filter=...)``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_tuning import validation
from airflow_provider_tuning.exceptions import InvalidInputError
from airflow_provider_tuning.hooks.base import TuningApiHook
from airflow_provider_tuning.hooks.connection import ConnectionSettings
from airflow_provider_tuning.hooks.retry import RetryPolicy
from airflow_provider_tuning.hooks.vertex_connection import (
    DEFAULT_GCP_CONN_ID,
    GCP_CONN_TYPE,
    VERTEX_API_VERSIONS,
    VertexSettings,
    vertex_settings,
)

if TYPE_CHECKING:
    from airflow_provider_tuning.hooks.ratelimit import SlidingWindowRateLimiter

_BUCKET = validation.GCS_BUCKET


def _endpoint(name: Any) -> str:
    return validation.cloud_resource_name(name, "endpoints", what="endpoint")


def _model(name: Any) -> str:
    """A model name without its ``@version``: deleting a model deletes all its versions."""
    return validation.cloud_resource_name(name, "models", what="model", version_suffix=True).split("@")[0]


def gcs_uri(bucket: str, name: str) -> str:
    """``gs://<bucket>/<name>``.

    :param bucket: the bucket.
    :param name: the object name.
    """
    return f"gs://{bucket}/{name}"


def split_gcs_uri(uri: Any, *, what: str = "uri") -> tuple[str, str]:
    """Split ``gs://<bucket>/<object>`` (or ``gs://<bucket>/<prefix>/``) into bucket and object name.

    :param uri: the URI.
    :param what: the argument name, for messages.
    :raises InvalidInputError: it is not a ``gs://`` URI with a valid bucket name.
    """
    if not isinstance(uri, str) or not uri.startswith("gs://"):
        raise InvalidInputError(f"{what} must be a gs://<bucket>/<object> URI, got {validation.quote(uri)}")
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise InvalidInputError(f"{what} {validation.quote(uri)} does not name a valid bucket")
    validation.check_text(what, name)
    return bucket, name


def content_addressed_name(prefix: str, data: bytes, suffix: str = ".jsonl") -> str:
    """An object name that is a function of its content: a retry uploads the same name, nothing new.

    :param prefix: the folder (no leading or trailing ``/`` needed).
    :param data: the content.
    :param suffix: the file extension.
    """
    digest = hashlib.sha256(data).hexdigest()[:32]
    folder = prefix.strip("/")
    return f"{folder}/{digest}{suffix}" if folder else f"{digest}{suffix}"


class VertexTuningHook(TuningApiHook):
    """Calls Vertex AI (tuning jobs, models, endpoints) and the Cloud Storage JSON API.

    :param gcp_conn_id: a ``google_cloud_platform`` connection (the Google provider's; it need not
        be installed).
    :param project_id: the project; default: the connection's extra ``project``.
    :param location: the region; default: the connection's extra ``location``, else ``us-central1``.
    :param api_version: ``v1`` (default) or ``v1beta1``.
    :param timeout: ``(connect, read)`` timeout of every request, in seconds.
    :param retry: retry policy for 408/429/5xx answers and connection errors.
    :param pool_size: connections kept open per host: at least the number of concurrent calls.
    :param rate_limiter: a limiter every HTTP request of this hook (retries included) must pass.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = DEFAULT_GCP_CONN_ID
    conn_type = GCP_CONN_TYPE
    hook_name = "Vertex AI tuning"

    def __init__(
        self,
        gcp_conn_id: str = DEFAULT_GCP_CONN_ID,
        *,
        project_id: str | None = None,
        location: str | None = None,
        api_version: str = "v1",
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy | None = None,
        pool_size: int = 10,
        rate_limiter: SlidingWindowRateLimiter | None = None,
    ) -> None:
        if api_version not in VERTEX_API_VERSIONS:
            raise InvalidInputError(
                f"api_version must be one of {', '.join(VERTEX_API_VERSIONS)}, "
                f"got {validation.quote(api_version)}"
            )
        super().__init__(
            gcp_conn_id, timeout=timeout, retry=retry, pool_size=pool_size, rate_limiter=rate_limiter
        )
        self.gcp_conn_id = gcp_conn_id
        self.project_id = project_id
        self.location = location
        self.api_version = api_version
        self._vertex: VertexSettings | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gcp_conn_id={self.gcp_conn_id!r}, location={self.location!r})"

    @property
    def vertex(self) -> VertexSettings:
        """Project, location and host (read once per hook)."""
        if self._vertex is None:
            conn = self.get_connection(self.gcp_conn_id)
            self._vertex = vertex_settings(conn, project=self.project_id, location=self.location)
        return self._vertex

    def read_settings(self, conn: Any) -> ConnectionSettings:
        """The credentials part of :attr:`vertex` (the connection is read once).

        :param conn: the Airflow connection (already read by :attr:`vertex`).
        """
        return self.vertex.auth

    def default_api_version(self) -> str:
        """``v1`` or ``v1beta1``, as the hook was made."""
        return self.api_version

    # --- tuning jobs -----------------------------------------------------------------------------

    def create_tuning_job(self, tuning_job: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /{version}/projects/*/locations/*/tuningJobs``; returns the TuningJob.

        Never repeated after a connection error (no client-chosen id: a repeat could start a second
        paid job); the caller finds a lost create by its labels.

        :param tuning_job: the TuningJob body.
        """
        if not isinstance(tuning_job, Mapping):
            raise InvalidInputError(f"tuning_job must be a dict, got {type(tuning_job).__name__}")
        path = f"/{self.api_version}/{self.vertex.parent()}/tuningJobs"
        return self._call("POST", path, body=dict(tuning_job), retry_connection_errors=False)

    def get_tuning_job(self, name: str) -> dict[str, Any]:
        """``GET /{version}/{name}``.

        :param name: ``projects/*/locations/*/tuningJobs/*``.
        """
        return self._call("GET", f"/{self.api_version}/{validation.tuning_job_name(name, what='name')}")

    def list_tuning_jobs(
        self, *, filter: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the tuning jobs of the project and location, following ``nextPageToken``.

        :param filter: an AIP-160 filter, e.g. ``labels.airflow-ti="abc"``.
        :param page_size: jobs per page.
        """
        path = f"/{self.api_version}/{self.vertex.parent()}/tuningJobs"
        params = {"filter": filter, "pageSize": validation.page_size(page_size)}
        return self._paginate(path, "tuningJobs", params)

    def cancel_tuning_job(self, name: str) -> dict[str, Any]:
        """``POST /{version}/{name}:cancel``: asynchronous and best effort; returns ``{}``.

        :param name: ``projects/*/locations/*/tuningJobs/*``.
        """
        job = validation.tuning_job_name(name, what="name")
        return self._call("POST", f"/{self.api_version}/{job}:cancel", body={})

    # --- tuned models and endpoints ----------------------------------------------------------------

    def get_operation(self, name: str) -> dict[str, Any]:
        """``GET /{version}/projects/*/locations/*/.../operations/*`` (an undeploy's or a delete's).

        :param name: the operation name a call returned.
        """
        parts = name.split("/") if isinstance(name, str) else []
        if len(parts) < 6 or parts[0] != "projects" or parts[2] != "locations" or parts[-2] != "operations":
            raise InvalidInputError(f"not a Vertex AI operation name: {validation.quote(name)}")
        for part in parts:
            validation.check_text("operation name", part)
        if ".." in parts or any(not part for part in parts):
            raise InvalidInputError(f"not a Vertex AI operation name: {validation.quote(name)}")
        return self._call("GET", f"/{self.api_version}/{name}")

    def wait_for_operation(
        self, operation: Mapping[str, Any], *, timeout: float = 600.0, poll_interval: float = 2.0
    ) -> dict[str, Any]:
        """Poll a long-running operation until it is done; raise its error, if it ended with one.

        :param operation: the Operation a call returned.
        :param timeout: seconds to wait at most.
        :param poll_interval: seconds between polls.
        :raises TuningTimeoutError: it is still running after ``timeout``.
        :raises ApiError: it ended with an error (the matching subclass of its ``google.rpc`` code).
        """
        from airflow_provider_tuning.exceptions import TuningTimeoutError, api_error_from_response
        from airflow_provider_tuning.tuning_status import RPC_CODES

        deadline = time.monotonic() + timeout
        current = dict(operation)
        while not current.get("done"):
            if time.monotonic() >= deadline:
                raise TuningTimeoutError(f"operation {current.get('name')} did not finish in {timeout:g} s")
            self._sleep(poll_interval)
            current = self.get_operation(str(current.get("name")))
        error = current.get("error")
        if isinstance(error, Mapping):
            names = {number: name for name, number in RPC_CODES.items()}
            code = error.get("code")
            status = names.get(code, "UNKNOWN") if isinstance(code, int) else "UNKNOWN"
            http = {"NOT_FOUND": 404, "FAILED_PRECONDITION": 400, "PERMISSION_DENIED": 403}.get(status, 500)
            raise api_error_from_response(
                http,
                {"error": {"message": str(error.get("message", "")), "status": status}},
                request=f"operation {current.get('name')}",
            )
        return current

    def delete_model(self, name: str) -> dict[str, Any]:
        """``DELETE /{version}/projects/*/locations/*/models/*`` (a ``@version`` suffix is dropped:
        the whole model goes); returns the delete Operation.

        :param name: the tuned model (``TuningJob.tunedModel.model``).
        """
        return self._call("DELETE", f"/{self.api_version}/{_model(name)}")

    def get_endpoint(self, name: str) -> dict[str, Any]:
        """``GET /{version}/projects/*/locations/*/endpoints/*``.

        :param name: the endpoint (``TuningJob.tunedModel.endpoint``).
        """
        return self._call("GET", f"/{self.api_version}/{_endpoint(name)}")

    def undeploy_model(self, endpoint: str, deployed_model_id: str) -> dict[str, Any]:
        """``POST …/endpoints/*:undeployModel``; returns the Operation.

        :param endpoint: the endpoint.
        :param deployed_model_id: the id of the deployed model on it.
        """
        path = f"/{self.api_version}/{_endpoint(endpoint)}:undeployModel"
        return self._call("POST", path, body={"deployedModelId": deployed_model_id})

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        """``DELETE /{version}/projects/*/locations/*/endpoints/*``; returns the delete Operation.

        :param name: the endpoint.
        """
        return self._call("DELETE", f"/{self.api_version}/{_endpoint(name)}")

    def generate_content(self, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /{version}/{endpoint}:generateContent`` on the tuned model's endpoint.

        :param endpoint: ``projects/*/locations/*/endpoints/*``.
        :param body: the GenerateContentRequest (``contents`` and optional settings).
        """
        path = f"/{self.api_version}/{_endpoint(endpoint)}:generateContent"
        return self._call("POST", path, body=dict(body))

    # --- Cloud Storage (JSON API on the same authorized session) ---------------------------------------

    def upload_object(self, bucket: str, name: str, data: bytes, *, content_type: str) -> dict[str, Any]:
        """``POST /upload/storage/v1/b/<bucket>/o?uploadType=media&name=<name>``; returns the object.

        Safe to repeat (the same name and content): a retry after a lost answer rewrites the same
        object.

        :param bucket: the bucket.
        :param name: the object name.
        :param data: the content.
        :param content_type: its media type.
        """
        path = f"/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        return self.client.request(
            "POST",
            path,
            params={"uploadType": "media", "name": name},
            content=data,
            content_type=content_type,
            base_url=self.storage_url,
        )

    def get_object(self, bucket: str, name: str) -> dict[str, Any]:
        """``GET /storage/v1/b/<bucket>/o/<name>``: the object's metadata.

        :param bucket: the bucket.
        :param name: the object name.
        """
        path = f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        return self.client.request("GET", path, base_url=self.storage_url)

    @property
    def storage_url(self) -> str:
        """The Cloud Storage host: Google's, or the connection's host when it is a loopback one
        (the emulator serves both APIs at one address)."""
        settings = self.vertex.auth
        return settings.base_url if settings.is_loopback else "https://storage.googleapis.com"
