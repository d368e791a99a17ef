"""Fixtures for the emulator tests: an emulator on a free loopback port driven by a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.emulator.emulator_support import Api, FakeClock
from tuning_api_emulator import Emulator


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_emulator(clock: FakeClock) -> Iterator[Callable[..., Emulator]]:
    """Start emulators (fake clock, 1 s per step unless told) and stop them all afterwards."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("step_seconds", 1.0)
        kwargs.setdefault("clock", clock)
        emulator = Emulator(**kwargs)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


@pytest.fixture
def api(emulator: Emulator) -> Api:
    return Api(emulator.url)
