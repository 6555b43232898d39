"""Fixtures shared across the test tree.

- ``no_leftover_tasks``: fails an async test that leaves asyncio tasks running, as kopf's
  ``_no_asyncio_pending_tasks`` does. Opt in per module with
  ``pytestmark = pytest.mark.usefixtures("no_leftover_tasks")`` (not autouse: it would
  start an event loop for every synchronous test too).
- ``kube_clock``, ``kube_server``, ``kube_api``: the project's Kubernetes API test server
  (``controller.sim.kubeapi``) on a simulated clock, and a ``kubernetes_asyncio`` client
  pointed at it over HTTP.
"""

from __future__ import annotations

import asyncio

import pytest

from controller.sim import kubeapi
from controller.sim.cluster import SimClock

KUBE_T0 = 1_700_000_000.0  # a realistic Unix time, so RFC 3339 timestamps look like a cluster's
KUBE_POD_STARTUP_SECONDS = 30.0


@pytest.fixture
async def no_leftover_tasks():
    before = asyncio.all_tasks()
    yield
    # one turn of the loop lets tasks that were just cancelled finish
    await asyncio.sleep(0)
    current = asyncio.current_task()
    leftover = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    for task in leftover:
        task.cancel()
    assert not leftover, f"the test left tasks running: {leftover}"


@pytest.fixture
def kube_clock() -> SimClock:
    """The simulated clock the test server (and the code under test) read."""
    return SimClock(KUBE_T0)


@pytest.fixture
async def kube_server(kube_clock):
    """A ``KubeApiServer`` on ``kube_clock``; pods become Ready ``KUBE_POD_STARTUP_SECONDS`` after creation."""
    async with kubeapi.KubeApiServer(clock=kube_clock, pod_startup_seconds=KUBE_POD_STARTUP_SECONDS) as server:
        yield server


@pytest.fixture
async def kube_api(kube_server):
    """A ``kubernetes_asyncio.client.ApiClient`` for ``kube_server``."""
    async with kube_server.api_client() as api:
        yield api
