"""The live ``Clock``: Unix time from ``time.time`` and sleeps on the event loop.

The simulated clock (``controller.sim.cluster.SimClock``) implements the same port, so
every read of time and every sleep of the loop goes through one of the two.
"""

from __future__ import annotations

import asyncio
import time


class SystemClock:
    """``ports.Clock`` on the wall clock.

    ``now`` is ``time.time()`` (Unix seconds, may jump when the host's time is set);
    ``sleep`` is ``asyncio.sleep`` (monotonic, so a jump of the wall clock neither
    shortens nor lengthens a sleep).
    """

    def now(self) -> float:
        """Return the current Unix time in seconds."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds`` (0 or negative: yield once)."""
        await asyncio.sleep(max(0.0, seconds))
