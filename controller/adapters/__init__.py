"""I/O adapters; each module implements one port of ``controller.ports``."""
