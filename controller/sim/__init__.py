"""The discrete-event cluster simulator of ``../shared/BENCHMARK.md`` and its fake adapters.

Policies run against the same ports as the live loop (``controller.ports``), on a
simulated clock. See ``docs/benchmark.md`` for every choice the contract leaves open.
"""
