"""Table-driven tests of ``controller.decide.stabilize`` against the Kubernetes HPA.

Cases are translated from kubernetes ``pkg/controller/podautoscaler/horizontal_test.go``:
``TestScalingWithRules`` (``convertDesiredReplicasWithBehaviorRate``),
``TestCalculateScaleUpLimitWithScalingRules``, ``TestCalculateScaleDownLimitWithBehaviors``,
``TestNormalizeDesiredReplicasWithBehavior`` (``stabilizeRecommendationWithBehaviors``),
``TestNormalizeDesiredReplicas`` (``stabilizeRecommendation``),
``TestConvertDesiredReplicasWithRules`` and ``TestStoreScaleEvents``; and from the
"Configurable scaling behavior" section of the Kubernetes documentation.

Times are explicit: every case runs at ``NOW``. The Go tests place past scale events with
``generateEventsUniformDistribution(events, 120)``, which puts event ``i`` of ``n`` in the
middle of the ``i``-th segment of the last 120 s: ``[1, 5, 9]`` lands at ``NOW - 100``,
``NOW - 60`` and ``NOW - 20``. The Go clock moves on between generating the events and
reading them, so an event "60 s ago" is outside a 60 s period there; with a fixed ``NOW``
the same holds because periods count events strictly after ``NOW - period``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from controller.decide.stabilize import (
    bound_legacy,
    bound_with_behavior,
    longest_policy_period,
    record_scale_event,
    replicas_changed_in_period,
    scale_down_limit_with_rules,
    scale_up_limit_legacy,
    scale_up_limit_with_rules,
    stabilize_legacy,
    stabilize_with_behavior,
)
from controller.domain import (
    Behavior,
    PolicyType,
    Reason,
    Recommendation,
    ScaleEvent,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
    default_behavior,
)

NOW = 1000.0


def rules(
    pods: int = 0,
    pods_period: int = 0,
    percent: int = 0,
    percent_period: int = 0,
    window: int = 0,
    select: SelectPolicy = SelectPolicy.Max,
) -> ScalingRules:
    """``generateScalingRules`` of horizontal_test.go: a Pods and/or a Percent policy."""
    policies = []
    if pods:
        policies.append(ScalingPolicy(PolicyType.Pods, pods, pods_period))
    if percent:
        policies.append(ScalingPolicy(PolicyType.Percent, percent, percent_period))
    return ScalingRules(stabilization_window_seconds=window, select_policy=select, policies=tuple(policies))


# generateEventsUniformDistribution(..., 120)
EVENTS_1_5_9 = (ScaleEvent(1, NOW - 100), ScaleEvent(5, NOW - 60), ScaleEvent(9, NOW - 20))
EVENTS_2_4_6 = (ScaleEvent(2, NOW - 100), ScaleEvent(4, NOW - 60), ScaleEvent(6, NOW - 20))
EVENTS_10_10_10 = (ScaleEvent(10, NOW - 100), ScaleEvent(10, NOW - 60), ScaleEvent(10, NOW - 20))
EVENTS_8_12_9_11 = (
    ScaleEvent(8, NOW - 105),
    ScaleEvent(12, NOW - 75),
    ScaleEvent(9, NOW - 45),
    ScaleEvent(11, NOW - 15),
)

DEFAULT = default_behavior()


# ---------------------------------------------------------------------------------------------
# Rate policies: bound_with_behavior (convertDesiredReplicasWithBehaviorRate)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateCase:
    # settings (None: the API defaults, as GenerateHPAScaleUpRules/GenerateHPAScaleDownRules fill in)
    min_replicas: int
    max_replicas: int
    scale_up: ScalingRules | None = None
    scale_down: ScalingRules | None = None
    # history
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()
    # observed world
    current_replicas: int = 0
    desired_replicas: int = 0
    # expected
    expected: int = 0
    expected_reason: Reason = Reason.DesiredWithinRange


RATE_CASES = [
    pytest.param(
        RateCase(
            # settings
            min_replicas=3,
            max_replicas=8,
            # observed world
            current_replicas=5,
            desired_replicas=7,
            # expected
            expected=7,  # default limit max(5 + 4, ceil(5 * 2)) = 10, max 8; 7 fits
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="desired-within-range-is-kept",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=2,
            max_replicas=8,
            # observed world
            current_replicas=3,
            desired_replicas=1,
            # expected
            expected=2,  # default scale-down limit int(3 * (1 - 1.0)) = 0 < min 2
            expected_reason=Reason.TooFewReplicas,
        ),
        id="desired-below-min-is-raised-to-min",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=0,
            max_replicas=10,
            # observed world
            current_replicas=1,
            desired_replicas=0,
            # expected
            expected=0,  # limit int(1 * 0) = 0 = min 0; 0 is allowed
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="desired-zero-is-within-range-when-min-is-zero",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=10,
            # observed world
            current_replicas=20,
            desired_replicas=1000,
            # expected
            expected=10,  # limit max(20 + 4, ceil(20 * 2)) = 40 > max 10
            expected_reason=Reason.TooManyReplicas,
        ),
        id="max-is-the-limit-when-below-the-rate-limit",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=100,
            max_replicas=150,
            # observed world
            current_replicas=100,
            desired_replicas=1000,
            # expected
            expected=150,  # limit max(104, 200) = 200 > max 150
            expected_reason=Reason.TooManyReplicas,
        ),
        id="desired-above-max-is-cut-to-max",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=2000,
            scale_up=rules(percent=1, percent_period=60),
            # observed world
            current_replicas=3,
            desired_replicas=1000,
            # expected
            expected=4,  # ceil(3 * 1.01) = ceil(3.03)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="percent-scale-up-limit-is-rounded-up",
    ),
    pytest.param(
        RateCase(  # Go's case sets testThis and returns early; its expectation holds here
            # settings
            min_replicas=3,
            max_replicas=2000,
            scale_down=rules(pods=20, pods_period=60),
            # observed world
            current_replicas=1000,
            desired_replicas=3,
            # expected
            expected=980,  # 1000 - 20
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="scale-down-limit-above-min-is-the-limit",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            # observed world
            current_replicas=10,
            desired_replicas=50,
            # expected
            expected=20,  # default: max(10 + 4, ceil(10 * (1 + 100 / 100)))
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-with-default-behavior",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=100, pods_period=60, percent=100, percent_period=60),
            # observed world
            current_replicas=10,
            desired_replicas=500,
            # expected
            expected=110,  # max(10 + 100, 10 * 2)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-pods-policy-larger-than-percent-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=2, pods_period=60, percent=100, percent_period=60),
            # observed world
            current_replicas=10,
            desired_replicas=500,
            # expected
            expected=20,  # max(10 + 2, 10 * 2)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-percent-policy-larger-than-pods-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=100, pods_period=60),
            # observed world
            current_replicas=10,
            desired_replicas=50,
            # expected
            expected=50,  # limit 110 does not bind
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="scale-up-below-a-large-pods-policy-is-not-limited",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=30, pods_period=60),
            # observed world
            current_replicas=10,
            desired_replicas=50,
            # expected
            expected=40,  # 10 + 30
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-limited-by-pods-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(percent=200, percent_period=60),
            # observed world
            current_replicas=10,
            desired_replicas=50,
            # expected
            expected=30,  # ceil(10 * (1 + 200 / 100))
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-limited-by-percent-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(pods=20, pods_period=60, percent=1, percent_period=60, window=300),
            # observed world
            current_replicas=100,
            desired_replicas=2,
            # expected
            expected=80,  # Max change: min(100 - 20, int(100 * 0.99) = 99)
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="scale-down-pods-policy-allows-more-than-percent-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(pods=2, pods_period=60, percent=1, percent_period=60, window=300),
            # observed world
            current_replicas=100,
            desired_replicas=2,
            # expected
            expected=98,  # Max change: min(100 - 2, 99)
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="scale-down-percent-policy-allows-less-than-pods-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(pods=100, pods_period=60, window=300),
            # observed world
            current_replicas=10,
            desired_replicas=0,
            # expected
            expected=1,  # limit 10 - 100 = -90 below min 1
            expected_reason=Reason.TooFewReplicas,
        ),
        id="scale-down-limited-by-min-with-large-pods-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=5,
            max_replicas=1000,
            scale_down=rules(percent=100, percent_period=60, window=300),
            # observed world
            current_replicas=10,
            desired_replicas=2,
            # expected
            expected=5,  # limit int(10 * 0) = 0 below min 5
            expected_reason=Reason.TooFewReplicas,
        ),
        id="scale-down-limited-by-min-with-large-percent-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(pods=5, pods_period=60, window=300),
            # observed world
            current_replicas=10,
            desired_replicas=2,
            # expected
            expected=5,  # 10 - 5
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="scale-down-limited-by-pods-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=50, percent_period=60, window=300),
            # observed world
            current_replicas=10,
            desired_replicas=5,
            # expected
            expected=5,  # limit int(10 * 0.5) = 5 equals the desired count
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="scale-down-exactly-to-the-percent-limit-is-within-range",
    ),
    # --- with past scale events ---------------------------------------------------------------
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=200,
            scale_up=rules(pods=300, pods_period=60),
            # history
            scale_up_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=500,
            # expected
            expected=200,  # 200 < 100 - 9 + 300 (only the event at NOW - 20 is in the 60 s period)
            expected_reason=Reason.TooManyReplicas,
        ),
        id="scale-up-with-events-limited-by-max-under-a-large-pods-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=200,
            scale_up=rules(percent=10000, percent_period=60),
            # history
            scale_up_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=500,
            # expected
            expected=200,  # 200 < ceil(91 * 101)
            expected_reason=Reason.TooManyReplicas,
        ),
        id="scale-up-with-events-limited-by-max-under-a-large-percent-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=5, pods_period=120),
            # history
            scale_up_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=500,
            # expected
            expected=100,  # 120 s ago there were 100 - 15 = 85; 85 + 5 = 90 < 100: hold, never scale down
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="many-recent-scale-ups-hold-the-count-instead-of-scaling-down",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=150, pods_period=120),
            # history
            scale_up_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=500,
            # expected
            expected=235,  # 100 - 15 + 150
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-limited-by-rate",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(percent=200, percent_period=120),
            # history
            scale_up_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=500,
            # expected
            expected=255,  # (100 - 15) * (1 + 200 / 100)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-limited-by-percent-of-the-period-start",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(percent=300, percent_period=300),
            # history: +4 and -2, both at NOW - 60
            scale_up_events=(ScaleEvent(4, NOW - 60),),
            scale_down_events=(ScaleEvent(2, NOW - 60),),
            # observed world
            current_replicas=6,
            desired_replicas=24,
            # expected
            expected=16,  # period start 6 - 4 + 2 = 4; ceil(4 * (1 + 300 / 100))
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-limit-counts-scale-downs-in-the-period",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            # history: none of the events is within the default 15 s period
            scale_down_events=EVENTS_1_5_9,
            # observed world
            current_replicas=10,
            desired_replicas=5,
            # expected
            expected=5,  # int(10 * 0) = 0: the default policy allows any scale-down
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="scale-down-with-default-policy-ignores-older-events",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(pods=115, pods_period=120, window=300),
            # history
            scale_down_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=0,
            # expected
            expected=1,  # 100 + 15 - 115 = 0 below min 1
            expected_reason=Reason.TooFewReplicas,
        ),
        id="scale-down-with-events-limited-by-min-one",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=5,
            max_replicas=1000,
            scale_down=rules(pods=130, pods_period=120, window=300),
            # history
            scale_down_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=0,
            # expected
            expected=5,  # 100 + 15 - 130 = -15 below min 5
            expected_reason=Reason.TooFewReplicas,
        ),
        id="scale-down-with-events-limited-by-min-under-a-large-pods-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=5,
            max_replicas=1000,
            scale_down=rules(percent=100, percent_period=120, window=300),
            # history
            scale_down_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=2,
            # expected
            expected=5,  # int(115 * 0) = 0 below min 5
            expected_reason=Reason.TooFewReplicas,
        ),
        id="scale-down-with-events-limited-by-min-under-a-full-percent-policy",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(pods=5, pods_period=120, window=300),
            # history
            scale_down_events=EVENTS_1_5_9,
            # observed world
            current_replicas=100,
            desired_replicas=2,
            # expected
            expected=100,  # 100 + 15 - 5 = 110 > 100: hold
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="scale-down-rate-used-up-by-past-events-holds-the-count",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=50, percent_period=120, window=300),
            # history
            scale_down_events=EVENTS_2_4_6,
            # observed world
            current_replicas=100,
            desired_replicas=0,
            # expected
            expected=56,  # int((100 + 12) * 0.5)
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="scale-down-limited-by-percent-of-the-period-start",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=50, percent_period=180),
            # history: +2 and -4, both at NOW - 60
            scale_up_events=(ScaleEvent(2, NOW - 60),),
            scale_down_events=(ScaleEvent(4, NOW - 60),),
            # observed world
            current_replicas=10,
            desired_replicas=1,
            # expected
            expected=6,  # period start 10 - 2 + 4 = 12; int(12 * 0.5)
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="scale-down-limit-counts-scale-ups-in-the-period",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=10, percent_period=120, window=300),
            # history
            scale_down_events=EVENTS_10_10_10,
            # observed world
            current_replicas=100,
            desired_replicas=0,
            # expected
            expected=100,  # int((100 + 30) * 0.9) = 117 > 100: hold
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="past-scale-downs-prevent-further-scale-down",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=1000, percent_period=120, window=300),
            # history
            scale_down_events=EVENTS_10_10_10,
            # observed world
            current_replicas=10,
            desired_replicas=5,
            # expected
            expected=5,  # int(40 * (1 - 10)) = -360 < 5: the metrics decide
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="past-scale-downs-still-allow-more-scale-down",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=1000, pods_period=30, percent=100, percent_period=60),
            # history: 8, 12, 9, 11 at NOW - 105, - 75, - 45, - 15
            scale_up_events=EVENTS_8_12_9_11,
            # observed world
            current_replicas=100,
            desired_replicas=200,
            # expected
            expected=200,  # max(100 - 11 + 1000, ceil((100 - 20) * 2)) = 1089
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="policies-with-different-periods-count-different-events",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=20, pods_period=30, percent=10, percent_period=60),
            # history
            scale_up_events=EVENTS_8_12_9_11,
            # observed world
            current_replicas=100,
            desired_replicas=200,
            # expected
            expected=109,  # max(100 - 11 + 20 = 109, ceil((100 - 20) * 1.1) = 88)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="each-policy-subtracts-only-the-events-of-its-own-period",
    ),
    # --- selectPolicy Min and Disabled (documentation: "Example: limit scale down rate") ------
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=10, percent_period=60, pods=5, pods_period=60, select=SelectPolicy.Min),
            # observed world
            current_replicas=100,
            desired_replicas=10,
            # expected
            expected=95,  # Min change: max(int(100 * 0.9) = 90, 100 - 5 = 95)
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="docs-select-min-removes-no-more-than-5-pods-per-minute",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=10, percent_period=60, pods=5, pods_period=60, select=SelectPolicy.Min),
            # observed world
            current_replicas=30,
            desired_replicas=10,
            # expected
            expected=27,  # Min change: max(int(30 * 0.9) = 27, 30 - 5 = 25)
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="docs-select-min-uses-the-percent-policy-below-50-pods",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=4, pods_period=60, percent=100, percent_period=60, select=SelectPolicy.Min),
            # observed world
            current_replicas=10,
            desired_replicas=100,
            # expected
            expected=14,  # Min change: min(10 + 4, 10 * 2)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="select-min-scale-up-takes-the-smaller-increase",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=100, percent_period=15, select=SelectPolicy.Disabled),
            # observed world
            current_replicas=10,
            desired_replicas=2,
            # expected
            expected=10,  # Disabled: the limit is the current count
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="docs-disabled-scale-down-never-scales-in",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(pods=4, pods_period=15, select=SelectPolicy.Disabled),
            # observed world
            current_replicas=10,
            desired_replicas=20,
            # expected
            expected=10,  # Disabled: the limit is the current count
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="disabled-scale-up-never-scales-out",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_down=rules(percent=100, percent_period=15, select=SelectPolicy.Disabled),
            # observed world
            current_replicas=10,
            desired_replicas=20,
            # expected
            expected=20,  # scale-up runs on the default rules: max(10 + 4, ceil(10 * 2)) = 20 allows it
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="disabled-scale-down-does-not-affect-scale-up",
    ),
    # --- float64 arithmetic exactly as Go does it ---------------------------------------------
    pytest.param(
        RateCase(
            # settings
            min_replicas=1,
            max_replicas=1000,
            scale_up=rules(percent=10, percent_period=60),
            # observed world
            current_replicas=50,
            desired_replicas=100,
            # expected
            expected=56,  # ceil(float64(50) * (1 + 10 / 100.0)) = ceil(55.00000000000001)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="percent-scale-up-limit-rounds-the-float64-product-up",
    ),
    pytest.param(
        RateCase(
            # settings
            min_replicas=0,
            max_replicas=1000,
            scale_down=rules(percent=80, percent_period=60),
            # observed world
            current_replicas=10,
            desired_replicas=0,
            # expected
            expected=1,  # int32(float64(10) * (1 - 80 / 100.0)) = int32(1.9999999999999996)
            expected_reason=Reason.ScaleDownLimit,
        ),
        id="percent-scale-down-limit-truncates-the-float64-product",
    ),
]


@pytest.mark.parametrize("case", RATE_CASES)
def test_bound_with_behavior_matches_convert_desired_replicas_with_behavior_rate(case: RateCase) -> None:
    behavior = Behavior(
        scale_up=case.scale_up or DEFAULT.scale_up,
        scale_down=case.scale_down or DEFAULT.scale_down,
    )
    replicas, reason = bound_with_behavior(
        current_replicas=case.current_replicas,
        desired_replicas=case.desired_replicas,
        min_replicas=case.min_replicas,
        max_replicas=case.max_replicas,
        behavior=behavior,
        scale_up_events=case.scale_up_events,
        scale_down_events=case.scale_down_events,
        now=NOW,
    )
    assert (replicas, reason) == (case.expected, case.expected_reason)


def test_scale_up_limit_with_min_select_takes_the_smallest_proposal() -> None:
    """TestCalculateScaleUpLimitWithScalingRules: Min of Pods 2 and Percent 50 per 60 s from 1 replica."""
    limit = scale_up_limit_with_rules(
        current_replicas=1,
        scale_up_events=(),
        scale_down_events=(),
        rules=rules(pods=2, pods_period=60, percent=50, percent_period=60, window=300, select=SelectPolicy.Min),
        now=NOW,
    )
    assert limit == 2  # min(1 + 2, ceil(1 * 1.5) = 2)


def test_scale_down_limit_with_min_select_takes_the_highest_proposal() -> None:
    """TestCalculateScaleDownLimitWithBehaviors: Min of Pods 2 and Percent 50 per 60 s from 5 replicas."""
    limit = scale_down_limit_with_rules(
        current_replicas=5,
        scale_up_events=(),
        scale_down_events=(),
        rules=rules(pods=2, pods_period=60, percent=50, percent_period=60, window=300, select=SelectPolicy.Min),
        now=NOW,
    )
    assert limit == 3  # max(5 - 2, int(5 * 0.5) = 2)


@pytest.mark.parametrize(
    ("period_seconds", "expected"),
    [
        pytest.param(120, 15, id="all-three-events-within-120s"),  # 1 + 5 + 9
        # 5 + 9: the event at NOW - 100 is not after NOW - 100
        pytest.param(100, 14, id="event-exactly-at-the-period-start-is-not-counted"),
        pytest.param(60, 9, id="only-the-latest-event-within-60s"),
        pytest.param(15, 0, id="no-event-within-15s"),
    ],
)
def test_replicas_changed_in_period_counts_events_strictly_after_the_period_start(
    period_seconds: int, expected: int
) -> None:
    assert replicas_changed_in_period(EVENTS_1_5_9, period_seconds=period_seconds, now=NOW) == expected


def test_docs_scale_down_from_80_to_10_with_pods_4_and_percent_10_per_minute() -> None:
    """Documentation, "Scaling policies": Pods 4 / Percent 10 per 60 s, the larger change wins.

    "if there are 80 replicas and the target has to be scaled down to 10 replicas then during
    the first step 8 replicas will be reduced. In the next iteration when the number of replicas
    is 72, 10% of the pods is 7.2 but the number is rounded up to 8." Here each step is one
    policy period apart, and a sync inside the period is held by the events of that period.
    """
    behavior = Behavior(
        scale_up=DEFAULT.scale_up,
        scale_down=rules(pods=4, pods_period=60, percent=10, percent_period=60),
    )
    ups: tuple[ScaleEvent, ...] = ()
    downs: tuple[ScaleEvent, ...] = ()

    def sync(current: int, now: float) -> tuple[int, Reason]:
        nonlocal ups, downs
        replicas, reason = bound_with_behavior(
            current_replicas=current,
            desired_replicas=10,
            min_replicas=1,
            max_replicas=100,
            behavior=behavior,
            scale_up_events=ups,
            scale_down_events=downs,
            now=now,
        )
        ups, downs = record_scale_event(
            scale_up_events=ups,
            scale_down_events=downs,
            behavior=behavior,
            previous_replicas=current,
            new_replicas=replicas,
            now=now,
        )
        return replicas, reason

    assert sync(80, 0.0) == (72, Reason.ScaleDownLimit)  # min(int(80 * 0.9) = 72, 80 - 4 = 76)
    # Within the same minute the period started at 72 + 8 = 80, so the limit is still 72.
    assert sync(72, 15.0) == (72, Reason.ScaleDownLimit)
    assert sync(72, 45.0) == (72, Reason.ScaleDownLimit)

    expected_steps = [
        64,  # min(int(72 * 0.9) = int(64.8), 72 - 4 = 68): 7.2 pods "rounded up to 8"
        57,  # min(int(57.6), 60)
        51,  # min(int(51.3), 53)
        45,  # min(int(45.9), 47)
        40,  # min(int(40.5), 41)
        36,  # min(int(36.0), 36): at 40 both policies remove 4
        32,  # min(int(32.4), 32)
        28,  # min(int(28.8), 28)
        24,  # min(int(25.2), 24): below 40 the Pods policy removes 4 at a time
        20,  # min(int(21.6), 20)
        16,  # min(int(18.0), 16)
        12,  # min(int(14.4), 12)
    ]
    current = 72
    for step, expected in enumerate(expected_steps, start=1):
        current, reason = sync(current, 60.0 * step)
        assert (current, reason) == (expected, Reason.ScaleDownLimit), f"step {step}"
    # min(int(12 * 0.9) = 10, 12 - 4 = 8) = 8 is below the desired 10: the metrics decide.
    assert sync(current, 60.0 * 13) == (10, Reason.DesiredWithinRange)


def test_default_behavior_is_the_documented_default() -> None:
    """Documentation, "Default Behavior" (and pkg/apis/autoscaling/v2/defaults.go)."""
    behavior = default_behavior()
    assert behavior.scale_up.stabilization_window_seconds == 0
    assert behavior.scale_up.select_policy is SelectPolicy.Max
    assert set(behavior.scale_up.policies) == {
        ScalingPolicy(PolicyType.Percent, 100, 15),
        ScalingPolicy(PolicyType.Pods, 4, 15),
    }
    assert behavior.scale_down.stabilization_window_seconds == 300
    assert behavior.scale_down.select_policy is SelectPolicy.Max
    assert behavior.scale_down.policies == (ScalingPolicy(PolicyType.Percent, 100, 15),)
    # The scale-down window follows --horizontal-pod-autoscaler-downscale-stabilization.
    assert default_behavior(downscale_stabilization_seconds=60).scale_down.stabilization_window_seconds == 60


# ---------------------------------------------------------------------------------------------
# Stabilisation band: stabilize_with_behavior (stabilizeRecommendationWithBehaviors)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BandCase:
    # settings
    up_window: int
    down_window: int
    # history
    recommendations: tuple[Recommendation, ...]
    # observed world
    current_replicas: int
    desired_replicas: int
    # expected
    expected: int
    expected_reason: Reason
    expected_log: tuple[int, ...] = field(default=())  # replica counts kept, in order, then the new one


BAND_CASES = [
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=0,
            # history
            recommendations=(),
            # observed world
            current_replicas=100,
            desired_replicas=5,
            # expected
            expected=5,  # band [5, 5]
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(5,),
        ),
        id="empty-history-follows-the-recommendation",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=180,
            # history
            recommendations=(Recommendation(4, NOW - 120), Recommendation(5, NOW - 60)),
            # observed world
            current_replicas=100,
            desired_replicas=3,
            # expected
            expected=5,  # band [3, max(3, 4, 5)]: clamp 100 to 5
            expected_reason=Reason.ScaleDownStabilized,
            expected_log=(4, 5, 3),
        ),
        id="scale-down-stabilized-to-the-highest-recent-recommendation",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=300,
            down_window=0,
            # history
            recommendations=(Recommendation(4, NOW - 120), Recommendation(5, NOW - 60)),
            # observed world
            current_replicas=1,
            desired_replicas=7,
            # expected
            expected=4,  # band [min(7, 4, 5), 7]: clamp 1 to 4
            expected_reason=Reason.ScaleUpStabilized,
            expected_log=(4, 5, 7),
        ),
        id="scale-up-stabilized-to-the-lowest-recent-recommendation",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=300,
            down_window=0,
            # history
            recommendations=(Recommendation(1, NOW - 120), Recommendation(2, NOW - 60)),
            # observed world
            current_replicas=100,
            desired_replicas=3,
            # expected
            expected=3,  # band [1, 3]: clamp 100 to 3
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(1, 2, 3),
        ),
        id="no-scale-down-stabilization-without-a-down-window",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=300,
            # history
            recommendations=(Recommendation(4, NOW - 120), Recommendation(5, NOW - 60)),
            # observed world
            current_replicas=1,
            desired_replicas=3,
            # expected
            expected=3,  # band [3, 5]: clamp 1 to 3
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(4, 5, 3),
        ),
        id="no-scale-up-stabilization-without-an-up-window",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=0,
            # history: both samples are older than both windows
            recommendations=(Recommendation(10, NOW - 600), Recommendation(9, NOW - 540)),
            # observed world
            current_replicas=100,
            desired_replicas=3,
            # expected
            expected=3,
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(3,),  # the HPA overwrites one stale slot ([10, 3]); we drop both stale samples
        ),
        id="stale-recommendations-are-ignored-on-scale-down",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=0,
            # history
            recommendations=(Recommendation(10, NOW - 600), Recommendation(9, NOW - 540)),
            # observed world
            current_replicas=1,
            desired_replicas=100,
            # expected
            expected=100,
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(100,),  # the HPA keeps [10, 100]
        ),
        id="stale-recommendations-are-ignored-on-scale-up",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=180,
            # history
            recommendations=(
                Recommendation(10, NOW - 600),
                Recommendation(4, NOW - 60),
                Recommendation(5, NOW - 120),
                Recommendation(9, NOW - 540),
            ),
            # observed world
            current_replicas=100,
            desired_replicas=3,
            # expected
            expected=5,  # band [3, max(3, 4, 5)]
            expected_reason=Reason.ScaleDownStabilized,
            expected_log=(4, 5, 3),  # the HPA keeps [10, 4, 5, 3]
        ),
        id="scale-down-stabilization-skips-stale-samples",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=300,
            down_window=0,
            # history
            recommendations=(
                Recommendation(10, NOW - 6000),
                Recommendation(6, NOW - 60),
                Recommendation(5, NOW - 120),
                Recommendation(9, NOW - 180),
            ),
            # observed world
            current_replicas=1,
            desired_replicas=100,
            # expected
            expected=5,  # band [min(100, 6, 5, 9), 100]
            expected_reason=Reason.ScaleUpStabilized,
            expected_log=(6, 5, 9, 100),  # the HPA overwrites the stale 10: [100, 6, 5, 9]
        ),
        id="scale-up-stabilization-skips-stale-samples",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=300,
            down_window=300,
            # history
            recommendations=(Recommendation(2, NOW - 6000), Recommendation(3, NOW - 180)),
            # observed world
            current_replicas=2,
            desired_replicas=1,
            # expected
            expected=2,  # band [min(1, 3), max(1, 3)] = [1, 3] holds 2
            expected_reason=Reason.ScaleDownStabilized,
            expected_log=(3, 1),
        ),
        id="band-does-not-scale-up-when-the-recommendation-goes-down",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=300,
            down_window=300,
            # history
            recommendations=(Recommendation(2, NOW - 6000), Recommendation(1, NOW - 180)),
            # observed world
            current_replicas=2,
            desired_replicas=3,
            # expected
            expected=2,  # band [1, 3] holds 2
            expected_reason=Reason.ScaleUpStabilized,
            expected_log=(1, 3),
        ),
        id="band-does-not-scale-down-when-the-recommendation-goes-up",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=300,
            # history: a sample exactly at NOW - 300 is outside (timestamp.After(cutoff) is strict)
            recommendations=(Recommendation(9, NOW - 300),),
            # observed world
            current_replicas=10,
            desired_replicas=3,
            # expected
            expected=3,  # band [3, 3]
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(9, 3),
        ),
        id="sample-exactly-at-the-window-edge-is-outside-the-band",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=0,
            down_window=300,
            # history
            recommendations=(Recommendation(9, NOW - 299.5),),
            # observed world
            current_replicas=10,
            desired_replicas=3,
            # expected
            expected=9,  # band [3, 9]
            expected_reason=Reason.ScaleDownStabilized,
            expected_log=(9, 3),
        ),
        id="sample-just-inside-the-window-is-in-the-band",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=300,
            down_window=0,
            # history: a low sample exactly at NOW - 300 is outside the scale-up window too
            recommendations=(Recommendation(2, NOW - 300),),
            # observed world
            current_replicas=1,
            desired_replicas=7,
            # expected
            expected=7,  # band [7, 7]
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(2, 7),
        ),
        id="sample-exactly-at-the-scale-up-window-edge-does-not-hold-a-scale-up",
    ),
    pytest.param(
        BandCase(
            # settings
            up_window=300,
            down_window=0,
            # history
            recommendations=(Recommendation(2, NOW - 299.5),),
            # observed world
            current_replicas=1,
            desired_replicas=7,
            # expected
            expected=2,  # band [min(7, 2), 7]
            expected_reason=Reason.ScaleUpStabilized,
            expected_log=(2, 7),
        ),
        id="low-sample-inside-the-scale-up-window-holds-a-scale-up",
    ),
]


@pytest.mark.parametrize("case", BAND_CASES)
def test_stabilize_with_behavior_clamps_the_current_count_into_the_windows_band(case: BandCase) -> None:
    behavior = Behavior(
        scale_up=rules(pods=4, pods_period=15, window=case.up_window),
        scale_down=rules(percent=100, percent_period=15, window=case.down_window),
    )
    stabilized, reason, log = stabilize_with_behavior(
        recommendations=case.recommendations,
        desired_replicas=case.desired_replicas,
        current_replicas=case.current_replicas,
        now=NOW,
        behavior=behavior,
    )
    assert (stabilized, reason) == (case.expected, case.expected_reason)
    assert tuple(r.replicas for r in log) == case.expected_log
    assert log[-1] == Recommendation(case.desired_replicas, NOW)


# ---------------------------------------------------------------------------------------------
# Legacy path: stabilize_legacy (stabilizeRecommendation) and bound_legacy (convertDesiredReplicasWithRules)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LegacyWindowCase:
    # history
    recommendations: tuple[Recommendation, ...]
    # observed world
    desired_replicas: int
    # expected
    expected: int
    expected_reason: Reason
    expected_log: tuple[int, ...]


LEGACY_WINDOW_CASES = [
    pytest.param(
        LegacyWindowCase(
            # history
            recommendations=(),
            # observed world
            desired_replicas=5,
            # expected
            expected=5,
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(5,),
        ),
        id="empty-log",
    ),
    pytest.param(
        LegacyWindowCase(
            # history
            recommendations=(Recommendation(4, NOW - 120), Recommendation(5, NOW - 60)),
            # observed world
            desired_replicas=3,
            # expected
            expected=5,  # max(3, 4, 5)
            expected_reason=Reason.ScaleDownStabilized,
            expected_log=(4, 5, 3),
        ),
        id="scale-down-waits-for-the-highest-recommendation-of-the-window",
    ),
    pytest.param(
        LegacyWindowCase(
            # history
            recommendations=(Recommendation(1, NOW - 120), Recommendation(2, NOW - 60)),
            # observed world
            desired_replicas=3,
            # expected
            expected=3,  # max(3, 1, 2)
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(1, 2, 3),
        ),
        id="scale-up-is-not-stabilized",
    ),
    pytest.param(
        LegacyWindowCase(
            # history
            recommendations=(Recommendation(10, NOW - 600), Recommendation(9, NOW - 540)),
            # observed world
            desired_replicas=3,
            # expected
            expected=3,  # both samples are older than 300 s
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(3,),  # the HPA overwrites one stale slot (log length 2); we drop both
        ),
        id="old-recommendations-do-not-stabilize",
    ),
    pytest.param(
        LegacyWindowCase(
            # history
            recommendations=(
                Recommendation(10, NOW - 600),
                Recommendation(4, NOW - 60),
                Recommendation(5, NOW - 120),
                Recommendation(9, NOW - 540),
            ),
            # observed world
            desired_replicas=3,
            # expected
            expected=5,  # max(3, 4, 5); 10 and 9 are out of the window
            expected_reason=Reason.ScaleDownStabilized,
            expected_log=(4, 5, 3),  # the HPA's log keeps 4 entries
        ),
        id="old-recommendations-are-skipped-while-recent-ones-stabilize",
    ),
    pytest.param(
        LegacyWindowCase(
            # history: exactly at the cutoff; the HPA drops samples only if timestamp.Before(cutoff)
            recommendations=(Recommendation(9, NOW - 300),),
            # observed world
            desired_replicas=3,
            # expected
            expected=9,
            expected_reason=Reason.ScaleDownStabilized,
            expected_log=(9, 3),
        ),
        id="sample-exactly-at-the-cutoff-still-counts",
    ),
    pytest.param(
        LegacyWindowCase(
            # history
            recommendations=(Recommendation(9, NOW - 300.5),),
            # observed world
            desired_replicas=3,
            # expected
            expected=3,
            expected_reason=Reason.ReadyForNewScale,
            expected_log=(3,),
        ),
        id="sample-just-before-the-cutoff-no-longer-counts",
    ),
]


@pytest.mark.parametrize("case", LEGACY_WINDOW_CASES)
def test_stabilize_legacy_keeps_the_highest_recommendation_of_300_seconds(case: LegacyWindowCase) -> None:
    stabilized, reason, log = stabilize_legacy(
        recommendations=case.recommendations,
        desired_replicas=case.desired_replicas,
        now=NOW,
        window_seconds=300,
    )
    assert (stabilized, reason) == (case.expected, case.expected_reason)
    assert tuple(r.replicas for r in log) == case.expected_log
    assert log[-1] == Recommendation(case.desired_replicas, NOW)


def test_stabilize_legacy_window_follows_the_flag() -> None:
    """--horizontal-pod-autoscaler-downscale-stabilization=1m: a sample 120 s old no longer counts."""
    history = (Recommendation(9, NOW - 120),)
    assert stabilize_legacy(recommendations=history, desired_replicas=3, now=NOW, window_seconds=60)[:2] == (
        3,
        Reason.ReadyForNewScale,
    )
    assert stabilize_legacy(recommendations=history, desired_replicas=3, now=NOW, window_seconds=300)[:2] == (
        9,
        Reason.ScaleDownStabilized,
    )


@dataclass(frozen=True)
class LegacyBoundCase:
    # settings
    min_replicas: int
    max_replicas: int
    # observed world
    current_replicas: int
    desired_replicas: int
    # expected
    expected: int
    expected_reason: Reason


# horizontal_test.go sets scaleUpLimitFactor = 8 in init(); these use the real factor 2.
LEGACY_BOUND_CASES = [
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=3,
            max_replicas=8,
            # observed world
            current_replicas=5,
            desired_replicas=7,
            # expected
            expected=7,  # cap max(2 * 5, 4) = 10 > max 8; 7 fits
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="prenormalized-desired-replicas-within-range",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=2,
            max_replicas=8,
            # observed world
            current_replicas=3,
            desired_replicas=1,
            # expected
            expected=2,
            expected_reason=Reason.TooFewReplicas,
        ),
        id="prenormalized-desired-replicas-below-min",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=0,
            max_replicas=10,
            # observed world
            current_replicas=1,
            desired_replicas=0,
            # expected
            expected=0,
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="prenormalized-desired-zero-within-range",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=1,
            max_replicas=10,
            # observed world
            current_replicas=20,
            desired_replicas=1000,
            # expected
            expected=10,  # max 10 <= cap max(2 * 20, 4) = 40
            expected_reason=Reason.TooManyReplicas,
        ),
        id="max-is-the-limit-because-max-is-below-the-scale-up-limit",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=1,
            max_replicas=2000,
            # observed world
            current_replicas=3,
            desired_replicas=1000,
            # expected
            expected=6,  # max(2 * 3, 4) (the Go test's factor 8 gives 24)
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-limit-is-the-limit-because-it-is-below-max",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=1,
            max_replicas=100,
            # observed world
            current_replicas=1,
            desired_replicas=15,
            # expected
            expected=4,  # max(2 * 1, 4): the minimum of 4 beats doubling
            expected_reason=Reason.ScaleUpLimit,
        ),
        id="scale-up-limit-is-at-least-four",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=1,
            max_replicas=8,
            # observed world
            current_replicas=4,
            desired_replicas=8,
            # expected
            expected=8,  # max 8 is not above the cap 8, so max is the limiting bound, and 8 fits
            expected_reason=Reason.DesiredWithinRange,
        ),
        id="desired-equal-to-max-and-cap-is-within-range",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=1,
            max_replicas=8,
            # observed world
            current_replicas=4,
            desired_replicas=9,
            # expected
            expected=8,  # max 8 == cap max(2 * 4, 4): TooManyReplicas wins the tie
            expected_reason=Reason.TooManyReplicas,
        ),
        id="max-wins-a-tie-with-the-scale-up-limit",
    ),
    pytest.param(
        LegacyBoundCase(
            # settings
            min_replicas=5,
            max_replicas=8,
            # observed world
            current_replicas=6,
            desired_replicas=2,
            # expected
            expected=5,  # no rate limit on a legacy scale-down, only min
            expected_reason=Reason.TooFewReplicas,
        ),
        id="legacy-scale-down-is-bounded-only-by-min",
    ),
]


@pytest.mark.parametrize("case", LEGACY_BOUND_CASES)
def test_bound_legacy_matches_convert_desired_replicas_with_rules(case: LegacyBoundCase) -> None:
    assert bound_legacy(
        current_replicas=case.current_replicas,
        desired_replicas=case.desired_replicas,
        min_replicas=case.min_replicas,
        max_replicas=case.max_replicas,
    ) == (case.expected, case.expected_reason)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(0, 4, id="zero"),  # max(0, 4)
        pytest.param(1, 4, id="one"),  # max(2, 4)
        pytest.param(2, 4, id="two"),  # max(4, 4)
        pytest.param(3, 6, id="three"),  # max(6, 4)
        pytest.param(50, 100, id="fifty"),  # max(100, 4)
    ],
)
def test_legacy_scale_up_limit_is_double_and_at_least_four(current: int, expected: int) -> None:
    assert scale_up_limit_legacy(current) == expected


# ---------------------------------------------------------------------------------------------
# Scale events: record_scale_event (storeScaleEvent)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCase:
    # settings
    scaling_rules: ScalingRules | None
    # history
    previous_events: tuple[ScaleEvent, ...]
    # expected
    expected_change_in_60s: int  # getReplicasChangePerPeriod(60, previous events)
    expected_events: tuple[ScaleEvent, ...]


STORE_CASES = [
    pytest.param(
        StoreCase(
            # settings
            scaling_rules=None,
            # history
            previous_events=(),
            # expected
            expected_change_in_60s=0,
            expected_events=(),  # no behavior: nothing is stored
        ),
        id="no-behavior-stores-nothing",
    ),
    pytest.param(
        StoreCase(
            # settings
            scaling_rules=rules(pods=10, pods_period=60, percent=100, percent_period=60),
            # history
            previous_events=(),
            # expected
            expected_change_in_60s=0,
            expected_events=(ScaleEvent(5, NOW),),
        ),
        id="empty-history-with-two-policies-stores-the-change",
    ),
    pytest.param(
        StoreCase(
            # settings
            scaling_rules=None,
            # history
            previous_events=(ScaleEvent(7, NOW - 61),),
            # expected
            expected_change_in_60s=0,
            expected_events=(ScaleEvent(7, NOW - 61),),  # untouched
        ),
        id="outdated-entry-kept-untouched-without-behavior",
    ),
    pytest.param(
        StoreCase(
            # settings
            scaling_rules=rules(pods=10, pods_period=60, percent=100, percent_period=60),
            # history
            previous_events=(ScaleEvent(7, NOW - 61),),
            # expected
            expected_change_in_60s=0,
            expected_events=(ScaleEvent(5, NOW),),  # older than the longest period (60 s)
        ),
        id="outdated-entry-replaced-with-behavior",
    ),
    pytest.param(
        StoreCase(
            # settings
            scaling_rules=rules(pods=10, pods_period=60, percent=100, percent_period=60),
            # history
            previous_events=(ScaleEvent(7, NOW - 58),),
            # expected
            expected_change_in_60s=7,
            expected_events=(ScaleEvent(7, NOW - 58), ScaleEvent(5, NOW)),
        ),
        id="recent-entry-kept-with-behavior",
    ),
    pytest.param(
        StoreCase(
            # settings
            scaling_rules=rules(pods=10, pods_period=60),
            # history
            previous_events=(ScaleEvent(7, NOW - 61), ScaleEvent(6, NOW - 59)),
            # expected
            expected_change_in_60s=6,
            expected_events=(ScaleEvent(6, NOW - 59), ScaleEvent(5, NOW)),
        ),
        id="two-entries-one-of-them-replaced",
    ),
    pytest.param(
        StoreCase(
            # settings: the longest period (60 s) decides what is dropped, not the 30 s one
            scaling_rules=rules(pods=10, pods_period=60, percent=100, percent_period=30),
            # history
            previous_events=(
                ScaleEvent(8, NOW - 29),
                ScaleEvent(6, NOW - 59),
                ScaleEvent(7, NOW - 61),
                ScaleEvent(9, NOW - 61),
            ),
            # expected
            expected_change_in_60s=14,  # 8 + 6
            expected_events=(ScaleEvent(8, NOW - 29), ScaleEvent(6, NOW - 59), ScaleEvent(5, NOW)),
        ),
        id="policies-with-different-periods-keep-events-of-the-longest",
    ),
    pytest.param(
        StoreCase(
            # settings
            scaling_rules=rules(pods=10, pods_period=120, percent=100, percent_period=30),
            # history
            previous_events=(ScaleEvent(7, NOW - 58), ScaleEvent(6, NOW - 59)),
            # expected
            expected_change_in_60s=13,  # 7 + 6
            expected_events=(ScaleEvent(7, NOW - 58), ScaleEvent(6, NOW - 59), ScaleEvent(5, NOW)),
        ),
        id="two-entries-both-actual",
    ),
]


def _by_time(events: tuple[ScaleEvent, ...]) -> list[ScaleEvent]:
    # The HPA overwrites a stale slot in place; we append. Only the set of events matters.
    return sorted(events, key=lambda e: (e.at, e.delta))


@pytest.mark.parametrize("case", STORE_CASES)
def test_record_scale_up_event_trims_by_the_longest_policy_period(case: StoreCase) -> None:
    behavior = None
    if case.scaling_rules is not None:
        behavior = Behavior(scale_up=case.scaling_rules, scale_down=DEFAULT.scale_down)
    assert replicas_changed_in_period(case.previous_events, period_seconds=60, now=NOW) == case.expected_change_in_60s
    ups, downs = record_scale_event(
        scale_up_events=case.previous_events,
        scale_down_events=(),
        behavior=behavior,
        previous_replicas=10,
        new_replicas=15,
        now=NOW,
    )
    assert _by_time(ups) == _by_time(case.expected_events)
    assert downs == ()


@pytest.mark.parametrize("case", STORE_CASES)
def test_record_scale_down_event_trims_by_the_longest_policy_period(case: StoreCase) -> None:
    behavior = None
    if case.scaling_rules is not None:
        behavior = Behavior(scale_up=DEFAULT.scale_up, scale_down=case.scaling_rules)
    ups, downs = record_scale_event(
        scale_up_events=(),
        scale_down_events=case.previous_events,
        behavior=behavior,
        previous_replicas=10,
        new_replicas=5,
        now=NOW,
    )
    assert _by_time(downs) == _by_time(case.expected_events)
    assert ups == ()


def test_record_scale_event_leaves_the_other_direction_untouched() -> None:
    behavior = Behavior(scale_up=rules(pods=4, pods_period=15), scale_down=rules(pods=4, pods_period=15))
    old_down = (ScaleEvent(3, NOW - 500),)  # stale for any period, but trimming is per direction
    ups, downs = record_scale_event(
        scale_up_events=(),
        scale_down_events=old_down,
        behavior=behavior,
        previous_replicas=4,
        new_replicas=8,
        now=NOW,
    )
    assert ups == (ScaleEvent(4, NOW),)
    assert downs == old_down


def test_record_scale_event_ignores_an_unchanged_count() -> None:
    behavior = default_behavior()
    events = (ScaleEvent(2, NOW - 5),)
    assert record_scale_event(
        scale_up_events=events,
        scale_down_events=events,
        behavior=behavior,
        previous_replicas=6,
        new_replicas=6,
        now=NOW,
    ) == (events, events)


@pytest.mark.parametrize(
    ("scaling_rules", "expected"),
    [
        pytest.param(rules(pods=10, pods_period=60, percent=100, percent_period=30), 60, id="pods-period-longer"),
        pytest.param(rules(pods=10, pods_period=15, percent=100, percent_period=120), 120, id="percent-period-longer"),
        pytest.param(rules(), 0, id="no-policies"),
    ],
)
def test_longest_policy_period(scaling_rules: ScalingRules, expected: int) -> None:
    assert longest_policy_period(scaling_rules) == expected
