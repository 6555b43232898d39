"""Pure decision logic: no asyncio, no HTTP, no Kubernetes client.

Every function here takes time and state as arguments and returns new state,
so that the simulator, the live loop and table-driven tests all run the very
same code.
"""
