"""RayBus semantics across real Ray actors: order, bounds, and a counted drop policy."""

from __future__ import annotations

import time
from typing import Any

import pytest

from twin.actor import SessionInfo
from twin.bus import RayBus, routes_for
from twin.config import BusSettings
from twin.testing import Burst, Probe

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]


def test_a_slow_subscriber_drops_only_droppables_counted_and_the_recorder_nothing() -> None:
    import ray

    namespace = ray.get_runtime_context().namespace
    names = {"slow": "bus-test/slow", "lossless": "bus-test/lossless", "burst": "bus-test/burst"}
    settings = BusSettings(inbox_capacity=16, window=4, max_batch=32)
    routes = routes_for({"slow": Probe.subscribes, "lossless": Probe.subscribes})
    bus = RayBus(routes, names, namespace=namespace, settings=settings, lossless=["lossless"])
    session = SessionInfo(id="bus-test")

    def place(cls: type, name: str, **kwargs: Any) -> Any:
        return ray.remote(cls).options(name=names[name], namespace=namespace,
                                       num_cpus=0).remote(
            name=name, session=session, bus=bus, inbox_capacity=16, **kwargs)

    slow = place(Probe, "slow", settings={"delay_s": 0.002})
    lossless = place(Probe, "lossless")
    burst = place(Burst, "burst")
    try:
        ray.get([slow.start.remote(), lossless.start.remote(), burst.start.remote()])
        count, every = 3000, 10
        ray.get(burst.burst.remote(count, every), timeout=120)
        deadline = time.time() + 60
        while time.time() < deadline:
            health = ray.get(slow.health.remote())
            if health["inbox"]["queued"] == 0:
                break
            time.sleep(0.1)
        slow_seen = ray.get(slow.summary.remote())
        all_seen = ray.get(lossless.summary.remote())
        slow_health = ray.get(slow.health.remote())
        publisher = ray.get(burst.health.remote())["bus"]
    finally:
        for handle in (slow, lossless, burst):
            ray.kill(handle)

    # The lossless subscriber has everything, in publication order.
    assert all_seen["seqs"]["burst"] == list(range(count))
    # The slow one has every transcript (never dropped), in order ...
    seqs = slow_seen["seqs"]["burst"]
    assert seqs == sorted(seqs)
    transcripts = [n for n in seqs if n % every == 0]
    assert transcripts == list(range(0, count, every))
    # ... and lost only metrics, each loss counted at the publisher or at its inbox.
    metrics_seen = len(seqs) - len(transcripts)
    dropped = slow_health["inbox"]["dropped"].get("metric", 0) + publisher["dropped"].get(
        "metric", 0)
    assert dropped > 0, "a 2 ms subscriber should not keep up with a burst"
    assert metrics_seen + dropped == count - len(transcripts)
    assert set(slow_health["inbox"]["dropped"]) <= {"metric"}
    assert set(publisher["dropped"]) <= {"metric"}
    assert slow_health["inbox"]["max_depth"] <= 16
