"""One real local Ray for the whole ray tier."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20,
             namespace="twin", logging_level=logging.WARNING)
    yield
    ray.shutdown()
