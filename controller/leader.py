"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that of several replicas only one acts.

Built on ``kubernetes_asyncio.leaderelection`` with its ``LeaseLock``, with the timings
kube-controller-manager uses: a 15 s lease, a 10 s renew deadline and a 2 s retry period.
The replica holding the Lease is the leader; the others campaign every retry period and
take over once the holder has not renewed for a whole lease duration.

Design choices a reader might question:

* **Acting is gated, not started and stopped.** The controller's loop runs in every
  replica, but a tick only happens while ``is_leading()`` is true, and the actuator checks
  it again before each write. A follower therefore keeps its health endpoints and metrics,
  and a new leader starts from a fresh read of every target's state annotation.
* **The leader stops acting on its own clock, before the lease can expire.** The library
  gives up leadership when a renewal has not succeeded within the renew deadline, but a
  renewal request that hangs would hold it past that point. ``is_leading()`` is therefore
  also false as soon as the last successful renewal is older than the renew deadline,
  measured on the monotonic clock from *before* the renewal request was sent. Since the
  renew deadline (10 s) is shorter than the lease (15 s), which a follower waits out on its
  own clock from when it last saw the lease change, the old leader has stopped writing
  before any other replica can start (clock drift between nodes aside, as in client-go).
* **Losing the lease is not fatal.** Unlike kube-controller-manager, which exits, the
  replica becomes a candidate again, which avoids a restart loop when the API server
  is briefly unreachable.
* **A graceful stop releases the lease** (``release()``, as client-go's
  ``ReleaseOnCancel``), so the next leader need not wait out the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

log = logging.getLogger(__name__)

__all__ = ["LeaderElector", "LeaseTimings"]


@dataclass(frozen=True, slots=True)
class LeaseTimings:
    """Timings of the election, in seconds (kube-controller-manager's by default).

    The library requires whole seconds >= 1 for the lease, ``lease > renew_deadline`` and
    ``renew_deadline > 1.2 * retry_period``; tests use ``LeaseTimings(3, 2, 1)``.
    """

    lease_duration_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0


class _TimedLeaseApi:
    """The lock's ``CoordinationV1Api``, reporting each Lease request to ``on_call`` (telemetry):
    the library swallows a failed write's status, so it is read here, on the way through."""

    _OPERATIONS = {
        "read_namespaced_lease": "read_lease",
        "create_namespaced_lease": "create_lease",
        "replace_namespaced_lease": "update_lease",
    }

    def __init__(self, api: Any, on_call: Callable[[Any], None], target: str) -> None:
        self._api, self._on_call, self._target = api, on_call, target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._api, name)
        operation = self._OPERATIONS.get(name)
        if operation is None:
            return method

        async def timed(*args: Any, **kwargs: Any) -> Any:
            from kubernetes_asyncio.client import ApiException

            from controller.adapters.kube import ApiCall

            started, status = time.perf_counter(), None
            try:
                return await method(*args, **kwargs)
            except ApiException as exc:
                status = int(exc.status or 0)
                raise
            except Exception:
                status = 0
                raise
            finally:
                self._on_call(ApiCall(operation, self._target, status, time.perf_counter() - started))

        return timed


class _ObservedLeaseLock(LeaseLock):
    """``LeaseLock`` that reports when a write of this candidate's record succeeded.

    The time reported is taken before the read that starts each attempt, so it is never
    later than the ``renewTime`` the write puts in the Lease.
    """

    def __init__(
        self, *args: Any, on_success: Callable[[float], None], on_call: Callable[[Any], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_success = on_success
        self._attempt_started = time.monotonic()
        if on_call is not None:
            self.api_instance = _TimedLeaseApi(self.api_instance, on_call, f"{self.namespace}/{self.name}")

    async def get(self, name: str, namespace: str):  # noqa: ANN201 - the library's own shape
        self._attempt_started = time.monotonic()
        return await super().get(name, namespace)

    async def create(self, name: str, namespace: str, election_record: Any) -> bool:
        ok = await super().create(name, namespace, election_record)
        if ok:
            self._on_success(self._attempt_started)
        return ok

    async def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        ok = await super().update(name, namespace, updated_record)
        if ok:
            self._on_success(self._attempt_started)
        return ok


class LeaderElector:
    """Campaigns for a Lease and tells whether this replica may act.

    Args:
        api_client: a ``kubernetes_asyncio`` client.
        name: the Lease's name (``scaleahead``).
        namespace: the Lease's namespace (the controller's own).
        identity: this replica's identity (its pod name), unique among the replicas.
        timings: lease, renew deadline and retry period.
        on_change: called with ``True`` when this replica becomes leader, ``False`` when it
            stops being one (e.g. ``Telemetry.set_leader``).
        on_call: called with an ``ApiCall`` for each Lease request (``Telemetry.record_kube``).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        name: str,
        namespace: str,
        identity: str,
        timings: LeaseTimings = LeaseTimings(),
        on_change: Callable[[bool], None] | None = None,
        on_call: Callable[[Any], None] | None = None,
    ) -> None:
        self.api_client = api_client
        self.on_call = on_call
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timings = timings
        self.on_change = on_change
        self._leading = False
        self._last_renew = -float("inf")
        self.transitions: list[tuple[float, bool]] = []  # (monotonic time, leading) for tests and logs
        self._election: asyncio.Task | None = None
        self._lead_task: asyncio.Task | None = None
        self._abandoned = False

    # -- what the controller asks -------------------------------------------------------------------

    def is_leading(self) -> bool:
        """Whether this replica holds the Lease and renewed it within the renew deadline."""
        if not self._leading:
            return False
        if time.monotonic() - self._last_renew >= self.timings.renew_deadline_seconds:
            self._set_leading(False, why="the lease was not renewed within the renew deadline")
            return False
        return True

    # -- the campaign --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign until cancelled; lead while the Lease is held, then campaign again."""
        t = self.timings
        try:
            while True:
                lock = _ObservedLeaseLock(
                    self.name, self.namespace, self.identity, self.api_client, on_success=self._renewed, on_call=self.on_call
                )
                config = electionconfig.Config(
                    lock,
                    lease_duration=t.lease_duration_seconds,
                    renew_deadline=t.renew_deadline_seconds,
                    retry_period=t.retry_period_seconds,
                    onstarted_leading=self._lead,
                    onstopped_leading=self._stopped_leading,
                )
                self._abandoned = False
                self._election = asyncio.create_task(leaderelection.LeaderElection(config).run(), name="leader-election")
                try:
                    await self._election
                except asyncio.CancelledError:
                    if not self._abandoned:
                        raise  # run() itself was cancelled
                # The lease was lost or renewals were overdue: campaign again after a pause.
                self._set_leading(False, why="renewing failed")
                await asyncio.sleep(t.retry_period_seconds)
        finally:
            for task in (self._election, self._lead_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self._set_leading(False, why="stopped")

    async def release(self) -> None:
        """Give the Lease up when this replica holds it (graceful shutdown); errors are logged."""
        if not self._leading:
            return
        self._set_leading(False, why="released")
        from kubernetes_asyncio import client as k8s

        api = k8s.CoordinationV1Api(self.api_client)
        try:
            lease = await api.read_namespaced_lease(self.name, self.namespace, _request_timeout=5)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                await api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=5)
        except Exception as exc:
            log.warning("could not release the lease %s/%s: %s", self.namespace, self.name, exc)

    async def _lead(self) -> None:
        self._lead_task = asyncio.current_task()
        self._set_leading(True, why="acquired the lease")
        # Watch the renewals on our own clock: the library may be stuck in a request past
        # the renew deadline. When they are overdue, stop acting (is_leading() is already
        # false) and make the library give up, so this replica campaigns afresh.
        try:
            while self.is_leading():
                await asyncio.sleep(min(0.25, self.timings.retry_period_seconds / 4))
        except asyncio.CancelledError:
            return  # the library noticed first
        election = self._election
        if election is not None and not election.done():
            self._abandoned = True
            election.cancel()

    async def _stopped_leading(self) -> None:
        self._set_leading(False, why="lost the lease")

    def _renewed(self, at: float) -> None:
        self._last_renew = max(self._last_renew, at)

    def _set_leading(self, leading: bool, *, why: str) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self.transitions.append((time.monotonic(), leading))
        log.info("%s %s leader of %s/%s: %s", self.identity, "is now" if leading else "is no longer",
                 self.namespace, self.name, why)  # fmt: skip
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change(leading)
