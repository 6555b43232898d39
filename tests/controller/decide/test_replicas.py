"""Table-driven tests of ``controller.decide.replicas`` against the Kubernetes HPA.

Cases are translated from kubernetes ``pkg/controller/podautoscaler/replica_calculator_test.go``
(``TestReplicaCalc*`` for a CPU ``Resource`` metric with a utilisation target) and from the
"Algorithm details" section of the Kubernetes "Horizontal Pod Autoscaling" documentation.

Translation into our inputs:

* In the Go tests every pod has two containers, each with ``requests[i]`` and using
  ``levels[i]`` milli-CPU, so a pod requests ``2 * requests[i]`` and uses ``2 * levels[i]``;
  only the ratio matters.
* ``load`` (pod units) = total usage of the ready pods / per-pod request. With unequal
  requests (``TestReplicaCalcTolerance``) we divide by the average request, which leaves
  ``metricsTotal * 100 / requestsTotal`` unchanged.
* ``ready`` = running, ready pods that report a metric; ``starting`` = pods the HPA sets aside
  (unready, pending, or "hot CPU" pods still in their CPU initialisation period), whose
  metric it drops; failed pods and pods being deleted are not counted at all.
* ``target_utilization_ratio`` = ``targetUtilization`` / 100.

A pod with a *missing* metric is only equivalent to a starting pod on a scale-up (both count
as 0%); on a scale-down the HPA counts it at 100% of its request, which our model cannot
express. Not translated, for that reason: ``TestReplicaCalcMissingMetrics``,
``...MissingMetricsNoChangeEq``, ``...NoChangeLt``, ``...UnreadyChange``, ``...HotCpuNoChange``,
``...UnreadyScaleDown``, ``...DuringRollingUpdateWithMaxSurge``. Also not translated: the
custom/object/external metric cases (``*CM*``), ``...EmptyCPURequest`` and
``...DisjointResourcesMetrics`` (no requests in our model), and ``TestGroupPods`` (pod
classification happens before our inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.decide.replicas import calculate_replicas, target_percent, utilization_percent
from controller.domain import Reason


@dataclass(frozen=True)
class ReplicaCase:
    # settings
    target_utilization_ratio: float
    # observed world
    current_replicas: int
    ready: int
    load: float | None
    starting: int = 0
    tolerance: float = 0.1
    capacity_per_pod: float = 1.0
    # expected
    expected: int = 0
    expected_reason: Reason = Reason.WithinTolerance


REPLICA_CALC_CASES = [
    # --- replica_calculator_test.go: scale up -----------------------------------------------
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleUp
            # settings
            target_utilization_ratio=0.30,
            # observed world
            current_replicas=3,
            ready=3,
            load=1.5,  # (300 + 500 + 700) m / 1000 m per pod
            # expected
            expected=5,  # 1500 * 100 / 3000 = 50%; ceil(50 / 30 * 3) = ceil(5.0)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="scale-up-by-the-usage-ratio",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleUpUnreadyLessScale
            # settings
            target_utilization_ratio=0.30,
            # observed world: pod 0 (300 m) is unready and set aside
            current_replicas=3,
            ready=2,
            starting=1,
            load=1.2,  # (500 + 700) m / 1000 m
            # expected
            expected=4,  # 1200 * 100 / 2000 = 60% > 30%; over 3 pods: 1200 * 100 / 3000 = 40%; ceil(40 / 30 * 3) = 4
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="unready-pod-counted-as-zero-makes-a-smaller-scale-up",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleUpHotCpuLessScale
            # settings
            target_utilization_ratio=0.30,
            # observed world: pod 0 is ready but still in its CPU initialisation period
            current_replicas=3,
            ready=2,
            starting=1,
            load=1.2,  # (500 + 700) m / 1000 m
            # expected
            expected=4,  # as above: 40% over 3 pods; ceil(40 / 30 * 3) = 4
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="hot-cpu-pod-counted-as-zero-makes-a-smaller-scale-up",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleUpUnreadyNoScale
            # settings
            target_utilization_ratio=0.30,
            # observed world: pods 1 and 2 (500 m, 700 m) are unready and set aside
            current_replicas=3,
            ready=1,
            starting=2,
            load=0.4,  # 400 m / 1000 m
            # expected
            expected=3,  # 40% > 30%, but over 3 pods 400 * 100 / 3000 = 13%; 13 / 30 < 1 reverses the direction: keep 3
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="unready-pods-counted-as-zero-reverse-the-direction-so-nothing-changes",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleHotCpuNoScale
            # settings
            target_utilization_ratio=0.30,
            # observed world
            current_replicas=3,
            ready=1,
            starting=2,
            load=0.4,  # 400 m / 1000 m
            # expected
            expected=3,  # 13 / 30 < 1 after counting the hot pods as 0: keep 3
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="hot-cpu-pods-counted-as-zero-reverse-the-direction-so-nothing-changes",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleUpIgnoresFailedPods
            # settings
            target_utilization_ratio=0.30,
            # observed world: two failed pods are not counted at all
            current_replicas=2,
            ready=2,
            load=1.2,  # (500 + 700) m / 1000 m
            # expected
            expected=4,  # 60 / 30 = 2.0; ceil(2.0 * 2)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="scale-up-ignores-failed-pods",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleUpIgnoresDeletionPods
            # settings
            target_utilization_ratio=0.30,
            # observed world: two pods with a deletion timestamp are not counted
            current_replicas=2,
            ready=2,
            load=1.2,
            # expected
            expected=4,  # ceil(60 / 30 * 2)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="scale-up-ignores-pods-being-deleted",
    ),
    # --- replica_calculator_test.go: scale down ---------------------------------------------
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleDown
            # settings
            target_utilization_ratio=0.50,
            # observed world
            current_replicas=5,
            ready=5,
            load=1.4,  # (100 + 300 + 500 + 250 + 250) m / 1000 m
            # expected
            expected=3,  # 1400 * 100 / 5000 = 28%; ceil(28 / 50 * 5) = ceil(2.8)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="scale-down-by-the-usage-ratio",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleDownIncludeUnreadyPods
            # settings
            target_utilization_ratio=0.50,
            # observed world: pods 3 and 4 (250 m each) are unready and set aside
            current_replicas=5,
            ready=3,
            starting=2,
            load=0.9,  # (100 + 300 + 500) m / 1000 m
            # expected
            expected=2,  # 900 * 100 / 3000 = 30%; ratio < 1 so no rebalancing: ceil(30 / 50 * 3) = ceil(1.8)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="scale-down-over-the-ready-pods-only",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleDownExcludeUnscheduledPods
            # settings
            target_utilization_ratio=0.50,
            # observed world: four pending pods
            current_replicas=5,
            ready=1,
            starting=4,
            load=0.1,  # 100 m / 1000 m
            # expected
            expected=1,  # 10%; ceil(10 / 50 * 1) = ceil(0.2)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="scale-down-excludes-pending-pods",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleDownIgnoreHotCpuPods
            # settings
            target_utilization_ratio=0.50,
            # observed world: pods 3 and 4 are in their CPU initialisation period
            current_replicas=5,
            ready=3,
            starting=2,
            load=0.9,
            # expected
            expected=2,  # ceil(30 / 50 * 3) = ceil(1.8)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="scale-down-ignores-hot-cpu-pods",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcScaleDownIgnoresFailedPods and ...IgnoresDeletionPods
            # settings
            target_utilization_ratio=0.50,
            # observed world: 5 running pods; 2 failed (or terminating) pods are not counted
            current_replicas=5,
            ready=5,
            load=1.4,
            # expected
            expected=3,  # ceil(28 / 50 * 5) = ceil(2.8)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="scale-down-ignores-failed-and-terminating-pods",
    ),
    # --- replica_calculator_test.go: tolerance ----------------------------------------------
    pytest.param(
        ReplicaCase(  # TestReplicaCalcTolerance
            # settings
            target_utilization_ratio=1.00,
            # observed world: requests 1.8, 2.0 and 2.2 cores per pod (6000 m in all)
            current_replicas=3,
            ready=3,
            load=3.06,  # 2 * (1010 + 1030 + 1020) m / 2000 m average request
            # expected
            expected=3,  # 3060 * 100 / 3000 = 102%; |1 - 1.02| <= 0.1
            expected_reason=Reason.WithinTolerance,
        ),
        id="usage-within-tolerance-keeps-the-count",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcComputedToleranceAlgImplementation, first half
            # settings: target int32(100 * (1 / (2 * 0.9) + 0.01)) = 56%
            target_utilization_ratio=0.56,
            # observed world: 10 pods using 150 m of 300 m requested
            current_replicas=10,
            ready=10,
            load=5.0,  # 1500 m / 300 m
            # expected
            expected=9,  # 50%; 50 / 56 = 0.893, |1 - 0.893| > 0.1; ceil(0.893 * 10) = ceil(8.93)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="usage-just-outside-tolerance-scales-down",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcComputedToleranceAlgImplementation, second half
            # settings: target int32(100 * (1 / (2 * 0.9) + 0.004)) = 55%
            target_utilization_ratio=0.55,
            # observed world
            current_replicas=10,
            ready=10,
            load=5.0,
            # expected
            expected=10,  # 50 / 55 = 0.909, |1 - 0.909| <= 0.1
            expected_reason=Reason.WithinTolerance,
        ),
        id="usage-just-inside-tolerance-keeps-the-count",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcSuperfluousMetrics
            # settings
            target_utilization_ratio=1.00,
            # observed world: metrics for two pods that the target does not own are dropped
            current_replicas=4,
            ready=4,
            load=23.5,  # (4000 + 9500 + 3000 + 7000) m / 1000 m
            # expected
            expected=24,  # 23500 * 100 / 4000 = 587%; ceil(5.87 * 4) = ceil(23.48)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="metrics-of-pods-outside-the-target-are-ignored",
    ),
    # --- replica_calculator_test.go: missing metrics, on a scale-up only --------------------
    pytest.param(
        ReplicaCase(  # TestReplicaCalcMissingMetricsNoChangeGt
            # settings
            target_utilization_ratio=1.00,
            # observed world: pod 1 reports no metric; on a scale-up it counts as 0%, as a starting pod does
            current_replicas=2,
            ready=1,
            starting=1,
            load=1.9,  # 1900 m / 1000 m
            # expected
            expected=2,  # 190% > 100%; over 2 pods 1900 * 100 / 2000 = 95%; |1 - 0.95| <= 0.1: keep 2
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="pod-without-metric-counted-as-zero-brings-a-scale-up-within-tolerance",
    ),
    pytest.param(
        ReplicaCase(  # TestReplicaCalcMissingMetricsUnreadyScaleUp (and ...HotCpuScaleUp)
            # settings
            target_utilization_ratio=0.50,
            # observed world: pod 0 unready, pod 2 without a metric: both count as 0% on a scale-up
            current_replicas=3,
            ready=1,
            starting=2,
            load=2.0,  # 2000 m / 1000 m
            # expected
            expected=4,  # 200% > 50%; over 3 pods 2000 * 100 / 3000 = 66%; ceil(66 / 50 * 3) = ceil(3.96)
            expected_reason=Reason.StartingPodsCountedAsZero,
        ),
        id="unready-and-metricless-pods-counted-as-zero-damp-the-scale-up",
    ),
    # --- documentation: "Algorithm details" -------------------------------------------------
    # Requests of 200 m per pod (capacity_per_pod=0.2 cores, load in cores) and a 50% target,
    # i.e. a desired value of 100 m per pod.
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.50,
            capacity_per_pod=0.2,
            # observed world: 200 m per pod
            current_replicas=4,
            ready=4,
            load=0.8,
            # expected
            expected=8,  # 800 * 100 / 800 = 100%; 200.0 / 100.0 == 2.0: ceil(2.0 * 4)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="docs-200m-against-100m-doubles-the-replicas",
    ),
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.50,
            capacity_per_pod=0.2,
            # observed world: 50 m per pod
            current_replicas=4,
            ready=4,
            load=0.2,
            # expected
            expected=2,  # 200 * 100 / 800 = 25%; 50.0 / 100.0 == 0.5: ceil(0.5 * 4)
            expected_reason=Reason.UtilizationBelowTarget,
        ),
        id="docs-50m-against-100m-halves-the-replicas",
    ),
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.50,
            capacity_per_pod=0.2,
            # observed world: 108 m per pod
            current_replicas=4,
            ready=4,
            load=0.432,
            # expected
            expected=4,  # 432 * 100 / 800 = 54%; 54 / 50 = 1.08, within the default tolerance 0.1
            expected_reason=Reason.WithinTolerance,
        ),
        id="docs-ratio-within-tolerance-skips-scaling",
    ),
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.50,
            capacity_per_pod=0.2,
            # observed world: 112 m per pod
            current_replicas=4,
            ready=4,
            load=0.448,
            # expected
            expected=5,  # 448 * 100 / 800 = 56%; 56 / 50 = 1.12, outside 0.1: ceil(1.12 * 4) = ceil(4.48)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="docs-ratio-outside-tolerance-scales",
    ),
    pytest.param(
        ReplicaCase(
            # settings: a wider tolerance (the controller flag) absorbs the same 12%
            target_utilization_ratio=0.50,
            capacity_per_pod=0.2,
            tolerance=0.15,
            # observed world
            current_replicas=4,
            ready=4,
            load=0.448,
            # expected
            expected=4,  # |1 - 1.12| <= 0.15
            expected_reason=Reason.WithinTolerance,
        ),
        id="tolerance-flag-widens-the-dead-band",
    ),
    # --- integer percent truncation (GetResourceUtilizationRatio) ---------------------------
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.10,
            # observed world: 209 m of 1000 m on one pod
            current_replicas=1,
            ready=1,
            load=0.209,
            # expected
            expected=2,  # int(209 * 100 / 1000) = int(20.9) = 20%; ceil(20 / 10 * 1) = 2 (not ceil(2.09) = 3)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="utilization-is-truncated-to-an-integer-percent-before-the-ratio",
    ),
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.10,
            # observed world: 839 m over 4 pods
            current_replicas=4,
            ready=4,
            load=0.839,
            # expected
            expected=8,  # int(839 * 100 / 4000) = int(20.975) = 20%; ceil(2.0 * 4) = 8 (not ceil(2.0975 * 4) = 9)
            expected_reason=Reason.UtilizationAboveTarget,
        ),
        id="truncated-percent-saves-a-replica-on-several-pods",
    ),
    # --- failures that end the sync without a recommendation --------------------------------
    pytest.param(
        ReplicaCase(  # TestReplicaCalcEmptyMetrics: "no metrics returned from resource metrics API"
            # settings
            target_utilization_ratio=1.00,
            # observed world
            current_replicas=4,
            ready=3,
            load=None,
            # expected
            expected=4,  # the HPA errors out and does not scale: hold the current count
            expected_reason=Reason.MetricsUnavailable,
        ),
        id="no-metrics-holds-the-current-count",
    ),
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.50,
            # observed world: "did not receive metrics for any ready pods"
            current_replicas=3,
            ready=0,
            starting=3,
            load=0.0,
            # expected
            expected=3,  # hold the current count; never scale in on missing data
            expected_reason=Reason.NoReadyPods,
        ),
        id="no-ready-pod-holds-the-current-count",
    ),
    pytest.param(
        ReplicaCase(
            # settings
            target_utilization_ratio=0.50,
            # observed world
            current_replicas=3,
            ready=3,
            load=float("nan"),
            # expected
            expected=3,
            expected_reason=Reason.MetricsUnavailable,
        ),
        id="nan-load-is-treated-as-missing-metrics",
    ),
]


@pytest.mark.parametrize("case", REPLICA_CALC_CASES)
def test_calculate_replicas_matches_the_hpa_replica_calculator(case: ReplicaCase) -> None:
    replicas, reason = calculate_replicas(
        current_replicas=case.current_replicas,
        ready=case.ready,
        starting=case.starting,
        load=case.load,
        target_utilization_ratio=case.target_utilization_ratio,
        tolerance=case.tolerance,
        capacity_per_pod=case.capacity_per_pod,
    )
    assert (replicas, reason) == (case.expected, case.expected_reason)


@pytest.mark.parametrize(
    ("load", "pods", "capacity_per_pod", "expected"),
    [
        pytest.param(1.5, 3, 1.0, 50, id="three-pods-at-1500m-of-3000m"),  # 1500 * 100 // 3000
        pytest.param(1.4, 5, 1.0, 28, id="five-pods-at-1400m-of-5000m"),  # 1400 * 100 // 5000
        pytest.param(23.5, 4, 1.0, 587, id="superfluous-metrics-case-587-percent"),  # 23500 * 100 // 4000 = 587.5
        # 290 * 100 // 1000, not int(0.29 * 100) = 28
        pytest.param(0.29, 1, 1.0, 29, id="milli-units-avoid-float-error-below-an-integer"),
        pytest.param(0.209, 1, 1.0, 20, id="fraction-of-a-percent-is-truncated"),  # 20900 // 1000
        pytest.param(0.8, 4, 0.2, 100, id="requests-below-one-core"),  # 800 * 100 // (4 * 200)
        pytest.param(0.0, 3, 1.0, 0, id="idle-pods-are-at-zero-percent"),
        # the same 7 pods' worth on 10 pods in other units: 70% whatever the units
        pytest.param(7.0 * 0.0015, 10, 0.0015, 70, id="small-units"),
        pytest.param(7.0 * 0.0004, 10, 0.0004, 70, id="units-below-a-thousandth"),
        pytest.param(7.0 * 250.0, 10, 250.0, 70, id="large-units"),
    ],
)
def test_utilization_is_the_hpa_integer_percent_of_requests(
    load: float, pods: int, capacity_per_pod: float, expected: int
) -> None:
    assert utilization_percent(load=load, pods=pods, capacity_per_pod=capacity_per_pod) == expected


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        pytest.param(0.3, 30, id="thirty-percent"),
        pytest.param(0.56, 56, id="float-noise-above-an-integer-is-rounded-away"),  # 0.56 * 100 = 56.00000000000001
        pytest.param(0.55, 55, id="float-noise-is-rounded-away"),
        pytest.param(1.0, 100, id="one-hundred-percent"),
        pytest.param(0.001, 1, id="a-target-never-rounds-to-zero-percent"),
    ],
)
def test_target_ratio_becomes_the_int32_percent_of_the_api(ratio: float, expected: int) -> None:
    assert target_percent(ratio) == expected


def test_zero_load_on_ready_pods_recommends_zero_replicas() -> None:
    """The HPA returns ``ceil(0 * ready) = 0``; min/max bounds are applied later, not here."""
    assert calculate_replicas(
        current_replicas=4, ready=4, starting=0, load=0.0, target_utilization_ratio=0.5
    ) == (0, Reason.UtilizationBelowTarget)


def test_starting_pods_do_not_matter_when_usage_is_below_target() -> None:
    """Rebalancing only happens on a scale-up (``usageRatio > 1``); below target the starting pods are left out."""
    with_starting = calculate_replicas(
        current_replicas=6, ready=2, starting=4, load=0.4, target_utilization_ratio=0.5
    )
    without_starting = calculate_replicas(
        current_replicas=6, ready=2, starting=0, load=0.4, target_utilization_ratio=0.5
    )
    # 400 * 100 / 2000 = 20%; ceil(20 / 50 * 2) = ceil(0.8) = 1 either way
    assert with_starting == without_starting == (1, Reason.UtilizationBelowTarget)


def test_rebalanced_proposal_below_the_current_count_keeps_the_current_count() -> None:
    """``newUsageRatio > 1.0 && newReplicas < currentReplicas``: the HPA keeps the current count.

    spec.replicas is 10 but only 1 ready and 1 starting pod exist (a rollout in progress):
    900% on the ready pod; over 2 pods 9000 * 100 / 20000 = 450% -> ceil(4.5 * 2) = 9 < 10.
    """
    assert calculate_replicas(
        current_replicas=10, ready=1, starting=1, load=9.0, target_utilization_ratio=1.0
    ) == (10, Reason.DirectionReversed)
