"""The example DAGs shipped with the provider, and the command that copies them into a DAGs folder.

``python -m airflow_provider_tuning.examples copy <dags folder>`` (or ``airflow-tuning-examples copy
<dags folder>``) copies the example DAG files and their ``data/`` files into
``<dags folder>/airflow_provider_tuning_examples/``; ``list`` prints them. An installed wheel holds
them as ``airflow_provider_tuning/example_dags`` (built from the repository's ``dags/`` folder, see
``setup.py``); in a source checkout (``pip install -e .``) they are read from ``dags/`` itself.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

#: The folder created inside the DAGs folder.
TARGET_NAME = "airflow_provider_tuning_examples"
_PACKAGE = Path(__file__).resolve().parent


def source_folder() -> Path:
    """Return the folder holding the example DAGs: the installed package's, else the checkout's ``dags/``.

    :raises FileNotFoundError: neither exists (a broken installation).
    """
    for folder in (_PACKAGE / "example_dags", _PACKAGE.parent / "dags"):
        if folder.is_dir() and any(folder.glob("example_*.py")):
            return folder
    raise FileNotFoundError(
        f"the example DAGs are not installed: neither {_PACKAGE / 'example_dags'} nor "
        f"{_PACKAGE.parent / 'dags'} holds example_*.py files; reinstall airflow-provider-tuning"
    )


def example_files(source: Path | None = None) -> list[Path]:
    """Return the example DAG files and their data files, relative to the source folder.

    :param source: the folder to list (default :func:`source_folder`).
    """
    root = source or source_folder()
    files = sorted(root.glob("example_*.py")) + sorted((root / "data").glob("*"))
    return [path.relative_to(root) for path in files if path.is_file()]


def copy_examples(dags_folder: Path, *, force: bool = False) -> list[Path]:
    """Copy the example DAGs into ``dags_folder/airflow_provider_tuning_examples`` and return the paths
    written. A file already there with other content is kept unless ``force`` is set.

    :param dags_folder: the Airflow DAGs folder (it must exist).
    :param force: overwrite files that differ from the shipped ones.
    :raises FileNotFoundError: ``dags_folder`` is not a directory.
    :raises FileExistsError: a file differs and ``force`` is not set (nothing is written then).
    """
    if not dags_folder.is_dir():
        raise FileNotFoundError(f"DAGs folder {str(dags_folder)!r} is not a directory")
    source = source_folder()
    target = dags_folder / TARGET_NAME
    files = example_files(source)
    changed = [
        rel for rel in files if (target / rel).exists() and not filecmp.cmp(source / rel, target / rel, False)
    ]
    if changed and not force:
        names = ", ".join(str(target / rel) for rel in changed)
        raise FileExistsError(f"{names} already exist(s) with other content; use --force to overwrite")
    written = []
    for rel in files:
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, destination)
        written.append(destination)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``copy <dags folder> [--force]`` or ``list``.

    :param argv: the arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_tuning.examples",
        description="Copy the example DAGs of airflow-provider-tuning into an Airflow DAGs folder.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help=f"copy the examples into <dags_folder>/{TARGET_NAME}/")
    copy.add_argument("dags_folder", type=Path, help="the Airflow DAGs folder ([core] dags_folder)")
    copy.add_argument("--force", action="store_true", help="overwrite example files you changed")
    commands.add_parser("list", help="print the shipped example files")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            source = source_folder()
            for rel in example_files(source):
                print(source / rel)
            return 0
        written = copy_examples(args.dags_folder, force=args.force)
    except (FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Copied {len(written)} files into {args.dags_folder / TARGET_NAME}:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
