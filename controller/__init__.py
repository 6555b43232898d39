"""scaleahead: a predictive autoscaling controller for Kubernetes.

The package is layered (see ``.importlinter`` contracts in ``pyproject.toml``):
``controller.domain`` and ``controller.decide`` are pure; ``controller.adapters``
do I/O; ``controller.sim`` is the discrete-event cluster simulator whose fake
adapters implement the same ports as the real ones.
"""

__version__ = "0.1.0"
