"""The opened store for each backend (``store_url`` comes from the top-level conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowengine.store import Store, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()
