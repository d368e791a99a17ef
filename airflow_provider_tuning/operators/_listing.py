"""The arguments every list operator shares: ``page_size``, ``filter`` and ``max_results``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_tuning import validation

T = TypeVar("T")


@dataclass(frozen=True)
class Listing:
    """A validated list request: the page size and filter sent, and where to stop.

    :param page_size: items per API page, ``None`` for the server's default.
    :param filter: the filter sent, ``None`` for none.
    :param limit: the most items to return, ``None`` for all.
    """

    page_size: int | None
    filter: str | None
    limit: int | None

    @classmethod
    def from_arguments(cls, page_size: Any, filter: Any, max_results: Any) -> Listing:
        """Validate a list operator's (rendered) arguments.

        :param page_size: ``page_size`` as given (1-1000, int or digits).
        :param filter: ``filter`` as given (text; empty means none).
        :param max_results: ``max_results`` as given (a positive integer, or ``None`` for all).
        """
        limit = None if max_results is None else validation.positive_int("max_results", max_results)
        return cls(
            page_size=validation.page_size(page_size),
            filter=validation.optional_string("filter", filter) or None,
            limit=limit,
        )

    def take(self, found: Iterable[T]) -> list[T]:
        """Follow the pages of ``found`` until ``limit`` items (or the end).

        :param found: the hook's lazily paged iterator.
        """
        return list(itertools.islice(found, self.limit))
