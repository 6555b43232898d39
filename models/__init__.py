"""Forecasting models for the controller, registered by name.

``create("ets", max_horizon_steps=16)`` builds a model; ``names()`` lists them. Each model lives in its
own module and registers itself with the ``register`` decorator, so adding a model is adding a module
and one import line at the bottom of this file (a dict and a decorator, not a ``switch`` as in KEDA's
``scalers_builder.go``). This package never imports ``controller`` (checked by import-linter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from models.base import DEFAULT_QUANTILES, Forecast, Forecaster

__all__ = ["DEFAULT_QUANTILES", "Forecast", "Forecaster", "REGISTRY", "create", "names", "register"]

REGISTRY: dict[str, Callable[..., Forecaster]] = {}

_F = TypeVar("_F", bound=Callable[..., Forecaster])


def register(name: str) -> Callable[[_F], _F]:
    """Class decorator: make the factory available as ``create(name)``.

    Raises:
        ValueError: the name is already taken.
    """

    def decorate(factory: _F) -> _F:
        if name in REGISTRY:
            raise ValueError(f"forecaster {name!r} is already registered")
        REGISTRY[name] = factory
        return factory

    return decorate


def create(name: str, **kwargs: Any) -> Forecaster:
    """Build the forecaster registered as ``name`` with keyword settings.

    Raises:
        KeyError: no model has that name (the message lists the known names).
    """
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown forecaster {name!r}; known: {', '.join(names())}") from None
    return factory(**kwargs)


def names() -> tuple[str, ...]:
    """Names of all registered forecasters, sorted."""
    return tuple(sorted(REGISTRY))


# Importing the model modules registers them; they must come after ``register`` is defined.
from models import auto, ets, naive, quantile_gbm, stl  # noqa: E402,F401
