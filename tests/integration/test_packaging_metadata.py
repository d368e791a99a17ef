"""The wheel built from setup.cfg: its license, its links (the Providers page's docs link) and its
requirements.

The wheel is built by pip from a copy of the sources in a temporary folder (so no build output lands
in the repository), with the build requirements of pyproject.toml from the package index.
"""

from __future__ import annotations

import email
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from tests.build_dists import ROOT, copy_provider_sources, pip_wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = copy_provider_sources(tmp_path_factory.mktemp("src"))
    return pip_wheel(src, tmp_path_factory.mktemp("wheel"), "airflow_provider_tuning-*.whl")


def metadata_of(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def documentation_url(metadata: Message) -> str | None:
    """What Airflow's provider discovery shows as the docs link (``Project-URL: Documentation, ...``)."""
    for entry in metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "documentation":
            return url.strip()
    return None


def test_the_wheel_ships_the_apache_license(wheel: Path) -> None:
    metadata = metadata_of(wheel)
    assert metadata["License"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    with zipfile.ZipFile(wheel) as archive:
        (license_file,) = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        text = archive.read(license_file).decode("utf-8")
    assert text == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                        Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_providers_page_links_the_docs_and_the_source(wheel: Path) -> None:
    metadata = metadata_of(wheel)
    docs = documentation_url(metadata)
    assert docs is not None
    assert docs.startswith("https://")
    assert docs.endswith("/tree/main/docs")
    labels = {entry.partition(",")[0].strip() for entry in metadata.get_all("Project-URL") or []}
    assert {"Documentation", "Source"} <= labels


def test_the_requirements(wheel: Path) -> None:
    requires = metadata_of(wheel).get_all("Requires-Dist") or []
    assert "apache-airflow-providers-common-compat>=1.22.0" in requires
    assert not [r for r in requires if r.startswith("responses")]  # no test uses it
