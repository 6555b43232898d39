"""Loading, validating and merging the controller settings (controller/settings.py)."""

from __future__ import annotations

import textwrap
import typing

import pytest
from pydantic import BaseModel, ValidationError

from controller.adapters.prometheus import render_query
from controller import domain, settings
from controller.domain import PolicyType, ScalingPolicy, ScalingRules, SelectPolicy


def load(text: str) -> settings.ControllerSettings:
    return settings.ControllerSettings.from_yaml(textwrap.dedent(text), source="config.yaml")


def problems_of(text: str) -> list[settings.Problem]:
    with pytest.raises(settings.SettingsError) as caught:
        load(text)
    return caught.value.problems


def all_models() -> list[type[BaseModel]]:
    """Every settings model reachable from ControllerSettings."""
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [settings.ControllerSettings]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            pending.extend(_models_in(field.annotation))
    return found


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


# ---------------------------------------------------------------------------------------------
# Defaults and the shape of the models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty-file"),
        pytest.param("# only a comment\n", id="comment-only"),
        pytest.param("---\n", id="empty-document"),
    ],
)
def test_an_empty_file_gives_the_defaults(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)

    loaded = settings.load_settings(path)

    assert loaded == settings.ControllerSettings()
    assert loaded.loop.interval_seconds == 15
    assert loaded.loop.default_mode == "recommend"
    assert loaded.metrics.on_missing == "hold"
    assert loaded.forecast.quantile == 0.85
    assert loaded.replicas.min_replicas == 1
    assert loaded.replicas.max_replicas == 100
    assert loaded.replicas.downscale_stabilization_seconds == 300
    assert loaded.replicas.behavior is None
    assert loaded.workloads == ()


def test_a_partial_file_keeps_the_defaults_of_what_it_leaves_out():
    loaded = load(
        """
        loop:
          interval_seconds: 30
        replicas:
          max_replicas: 10
        """
    )

    assert loaded.loop.interval_seconds == 30
    assert loaded.loop.failure_threshold == settings.LoopSettings().failure_threshold
    assert loaded.replicas.max_replicas == 10
    assert loaded.replicas.min_replicas == settings.ReplicaSettings().min_replicas


def test_every_field_of_every_model_has_a_description():
    missing = [
        f"{model.__name__}.{name}"
        for model in all_models()
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]

    assert missing == []


def test_the_workload_override_has_every_replica_setting_and_defaults_to_inherit():
    overrides = settings.ReplicaOverrides.model_fields

    assert list(overrides) == list(settings.ReplicaSettings.model_fields)
    assert all(field.default is None for field in overrides.values())


def test_the_forecast_override_has_every_forecast_setting_with_its_own_type():
    overrides = settings.ForecastOverrides.model_fields

    assert list(overrides) == list(settings.ForecastSettings.model_fields)
    assert all(field.default is None for field in overrides.values())
    # the types are the global ones (not made nullable): only lean_quantile takes null
    assert settings.ForecastOverrides.model_validate({"lean_quantile": None}).model_fields_set == {"lean_quantile"}
    with pytest.raises(ValidationError):
        settings.ForecastOverrides.model_validate({"quantile": None})


def test_settings_are_frozen():
    loaded = settings.ControllerSettings()

    with pytest.raises(ValidationError):
        loaded.loop.interval_seconds = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Each kind of mistake: its path, its line, and what the message says
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "line", "message"),
    [
        pytest.param(
            """\
            loop:
              interval_secnds: 10
            """,
            "loop.interval_secnds", 2, "did you mean 'interval_seconds'",
            id="unknown-key-suggests-the-closest-setting",
        ),
        pytest.param(
            """\
            forecast: {}
            colour: blue
            """,
            "colour", 2, "allowed here: loop, metrics",
            id="unknown-group",
        ),
        pytest.param(
            """\
            metrics:
              timeout_seconds: fast
            """,
            "metrics.timeout_seconds", 2, 'valid number, unable to parse string as a number (got "fast")',
            id="wrong-type",
        ),
        pytest.param(
            """\
            loop: 5
            """,
            "loop", 1, "must be a mapping",
            id="group-that-is-not-a-mapping",
        ),
        pytest.param(
            """\
            loop:
              interval_seconds: .inf
            """,
            "loop.interval_seconds", 2, "finite number",
            id="infinite-number",
        ),
        pytest.param(
            """\
            loop:
              default_mode: auto
            """,
            "loop.default_mode", 2, "'recommend' or 'active'",
            id="unknown-mode",
        ),
        pytest.param(
            """\
            metrics:
              prometheus_url: prometheus:9090
            """,
            "metrics.prometheus_url", 2, "http:// or https:// URL",
            id="url-without-scheme",
        ),
        pytest.param(
            """\
            forecast:
              quantile: 1.0
            """,
            "forecast.quantile", 2, "less than 1",
            id="quantile-of-one",
        ),
        pytest.param(
            """\
            replicas:
              startup_quantile: 90
            """,
            "replicas.startup_quantile", 2, "less than 1",
            id="startup-quantile-given-as-percent",
        ),
        pytest.param(
            """\
            replicas:
              target_utilization_ratio: 70
            """,
            "replicas.target_utilization_ratio", 2, "less than or equal to 1",
            id="ratio-given-as-percent",
        ),
        pytest.param(
            """\
            replicas:
              behavior:
                scale_down:
                  stabilization_window_seconds: -1
            """,
            "replicas.behavior.scale_down.stabilization_window_seconds", 4, "greater than or equal to 0",
            id="negative-window",
        ),
        pytest.param(
            """\
            replicas:
              behavior:
                scale_up:
                  stabilization_window_seconds: 3601
            """,
            "replicas.behavior.scale_up.stabilization_window_seconds", 4, "less than or equal to 3600",
            id="window-longer-than-the-api-allows",
        ),
        pytest.param(
            """\
            replicas:
              behavior:
                scale_up:
                  select_policy: max
            """,
            "replicas.behavior.scale_up.select_policy", 4, "'Max', 'Min' or 'Disabled' (got \"max\")",
            id="select-policy-in-the-wrong-case",
        ),
        pytest.param(
            """\
            replicas:
              behavior:
                scale_up:
                  policies:
                    - {type: Pods, value: 4, period_seconds: 15}
                    - {type: Replicas, value: 4, period_seconds: 15}
            """,
            "replicas.behavior.scale_up.policies[1].type", 6, "'Pods' or 'Percent'",
            id="unknown-policy-type",
        ),
        pytest.param(
            """\
            replicas:
              behavior:
                scale_down:
                  policies:
                    - type: Percent
                      value: 10
                      period_seconds: 1801
            """,
            "replicas.behavior.scale_down.policies[0].period_seconds", 7, "less than or equal to 1800",
            id="policy-period-longer-than-the-api-allows",
        ),
        pytest.param(
            """\
            replicas:
              behavior:
                scale_down:
                  policies: []
            """,
            "replicas.behavior.scale_down.policies", 4, "at least one policy",
            id="empty-policy-list",
        ),
        pytest.param(
            """\
            replicas:
              min_replicas: 5
              max_replicas: 2
            """,
            "replicas.max_replicas", 3, "greater than or equal to min_replicas (5)",
            id="min-above-max",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: Shop
                name: web
            """,
            "workloads[0].namespace", 2, 'DNS-1123 label',
            id="namespace-with-capitals",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
              - namespace: shop
                name: web_api
            """,
            "workloads[1].name", 5, 'DNS-1123 subdomain',
            id="name-with-underscore",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
            """,
            "workloads[0].name", 2, "required setting is missing",
            id="workload-without-name",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
              - namespace: shop
                name: api
              - namespace: shop
                name: web
            """,
            "workloads[2]", 6, "duplicates workloads[0] (Deployment shop/web)",
            id="duplicate-workload",
        ),
        pytest.param(
            """\
            metrics:
              load_query: sum(rate(x{namespace="{namespace}"}[1m]))
            """,
            "metrics.load_query", 2, "write the placeholder {namespace} as $namespace",
            id="template-in-format-style",
        ),
        pytest.param(
            """\
            metrics:
              load_query: sum(rate(x{pod="$pod"}[1m]))
            """,
            "metrics.load_query", 2, "unknown placeholder $pod",
            id="template-with-unknown-placeholder",
        ),
        pytest.param(
            """\
            metrics:
              load_query: sum(x) * $ 2
            """,
            "metrics.load_query", 2, "invalid placeholder at character 10",
            id="template-with-a-lone-dollar",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
                load_query: x{pod=~"{name}-.*"}
            """,
            "workloads[0].load_query", 4, "as $name",
            id="workload-template-in-format-style",
        ),
        pytest.param(
            """\
            replicas:
              min_replicas: 5
            workloads:
              - namespace: shop
                name: web
                replicas:
                  max_replicas: 3
            """,
            "workloads[0].replicas.max_replicas", 7, "min_replicas (5, from replicas.min_replicas)",
            id="override-max-below-the-global-min",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
                replicas:
                  min_replicas: 200
            """,
            "workloads[0].replicas.min_replicas", 5, "max_replicas (100, from replicas.max_replicas)",
            id="override-min-above-the-global-max",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
                forecast:
                  quantile: 0.5
            """,
            "workloads[0].forecast", 4, "lower_quantile_to must be descending quantiles in (0, 1) below quantile 0.5",
            id="override-quantile-below-the-global-ladder",
        ),
        pytest.param(
            """\
            forecast:
              model: etss
            """,
            "forecast.model", 2, "unknown model 'etss'; known: auto, ets, naive",
            id="unknown-model",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
                forecast: {model: prophet}
            """,
            "workloads[0].forecast.model", 4, "unknown model 'prophet'",
            id="override-unknown-model",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
                forecast:
                  quantile: null
            """,
            "workloads[0].forecast.quantile", 5, "valid number (got null)",
            id="override-quantile-null",
        ),
        pytest.param(
            """\
            workloads:
              - namespace: shop
                name: web
                forecast:
                  lean_quantil: null
            """,
            "workloads[0].forecast.lean_quantil", 5, "did you mean 'lean_quantile'",
            id="override-unknown-forecast-key",
        ),
        pytest.param(
            """\
            loop:
              interval_seconds: 10
            loop:
              failure_threshold: 2
            """,
            "loop", 3, "written twice (first on line 1)",
            id="key-written-twice",
        ),
    ],
)
def test_each_mistake_is_reported_at_its_path_and_line(text, path, line, message):
    problems = problems_of(text)

    assert [(p.path, p.line) for p in problems] == [(path, line)]
    assert message in problems[0].message


def test_unparsable_yaml_is_one_problem_with_its_line_and_column():
    problems = problems_of(
        """\
        loop:
          interval_seconds: 10
         failure_threshold: 3
        """
    )

    assert len(problems) == 1
    assert problems[0].path == ""
    assert problems[0].line == 3
    assert problems[0].message.startswith("invalid YAML: ")
    assert "(column " in problems[0].message


def test_a_document_that_is_not_a_mapping_is_one_problem():
    problems = problems_of("- loop\n- metrics\n")

    assert [(p.path, p.line) for p in problems] == [("", 1)]
    assert "must be a mapping" in problems[0].message


def test_mistakes_in_different_groups_are_all_reported_in_line_order():
    # A failing field of `replicas` (the window) must not hide min > max in the same model,
    # and a failing workload must not hide a duplicate among the others.
    problems = problems_of(
        """\
        loop:
          interval_secnds: 10
        metrics:
          timeout_seconds: fast
        replicas:
          min_replicas: 5
          max_replicas: 2
          behavior:
            scale_down:
              stabilization_window_seconds: -1
        workloads:
          - namespace: Shop
            name: web
          - namespace: shop
            name: web
          - namespace: shop
            name: web
        """
    )

    assert [(p.line, p.path) for p in problems] == [
        (2, "loop.interval_secnds"),
        (4, "metrics.timeout_seconds"),
        (7, "replicas.max_replicas"),
        (10, "replicas.behavior.scale_down.stabilization_window_seconds"),
        (12, "workloads[0].namespace"),
        (16, "workloads[2]"),
    ]


def test_the_error_message_lists_each_problem_as_file_line_path_message():
    with pytest.raises(settings.SettingsError) as caught:
        settings.ControllerSettings.from_yaml("loop:\n  interval_seconds: 0\n  failure_threshold: 0\n", source="cm.yaml")

    assert str(caught.value).splitlines() == [
        "cm.yaml:2: loop.interval_seconds: input should be greater than 0 (got 0)",
        "cm.yaml:3: loop.failure_threshold: input should be greater than or equal to 1 (got 0)",
    ]


def test_a_settings_error_is_a_user_error():
    from controller import errors

    assert issubclass(settings.SettingsError, errors.UserError)


def test_a_missing_file_is_a_settings_error(tmp_path):
    with pytest.raises(settings.SettingsError) as caught:
        settings.load_settings(tmp_path / "absent.yaml")

    assert caught.value.source.endswith("absent.yaml")
    assert "cannot read the file" in caught.value.problems[0].message


def test_the_same_name_with_another_kind_is_not_a_duplicate():
    loaded = load(
        """
        workloads:
          - {namespace: shop, name: web}
          - {namespace: shop, name: web, kind: StatefulSet}
        """
    )

    assert [w.kind for w in loaded.workloads] == ["Deployment", "StatefulSet"]


# ---------------------------------------------------------------------------------------------
# behavior -> domain.Behavior
# ---------------------------------------------------------------------------------------------

DEFAULT_UP = domain.default_behavior().scale_up
DEFAULT_DOWN = domain.default_behavior().scale_down


@pytest.mark.parametrize(
    ("replicas", "expected"),
    [
        pytest.param({}, None, id="no-behavior-is-the-legacy-path"),
        pytest.param({"behavior": {}}, domain.default_behavior(), id="empty-behavior-takes-every-kubernetes-default"),
        pytest.param(
            # settings
            {"downscale_stabilization_seconds": 60, "behavior": {}},
            # expected
            domain.default_behavior(downscale_stabilization_seconds=60),
            id="scale-down-window-defaults-to-the-downscale-flag",
        ),
        pytest.param(
            {"downscale_stabilization_seconds": 60, "behavior": {"scale_down": {"stabilization_window_seconds": 0}}},
            domain.Behavior(
                scale_up=DEFAULT_UP,
                scale_down=ScalingRules(0, SelectPolicy.Max, DEFAULT_DOWN.policies),  # 0 is set, not "unset"
            ),
            id="explicit-zero-window-is-kept",
        ),
        pytest.param(
            {"behavior": {"scale_down": {"select_policy": "Disabled"}}},
            domain.Behavior(scale_up=DEFAULT_UP, scale_down=ScalingRules(300, SelectPolicy.Disabled, DEFAULT_DOWN.policies)),
            id="disabled-scale-down-keeps-the-other-defaults",
        ),
        pytest.param(
            {"behavior": {"scale_up": {"policies": [{"type": "Pods", "value": 1, "period_seconds": 60}]}}},
            domain.Behavior(
                scale_up=ScalingRules(0, SelectPolicy.Max, (ScalingPolicy(PolicyType.Pods, 1, 60),)),
                scale_down=DEFAULT_DOWN,
            ),
            id="given-policies-replace-the-default-policies",
        ),
    ],
)
def test_to_behavior_fills_the_kubernetes_defaults(replicas, expected):
    assert settings.ReplicaSettings.model_validate(replicas).to_behavior() == expected


def test_behavior_settings_spell_out_a_domain_behavior_exactly():
    behavior = domain.default_behavior(downscale_stabilization_seconds=42)
    replica_settings = settings.ReplicaSettings(behavior=settings.BehaviorSettings.from_behavior(behavior))

    assert replica_settings.to_behavior() == behavior


# ---------------------------------------------------------------------------------------------
# Per-workload views
# ---------------------------------------------------------------------------------------------

GLOBAL_REPLICAS = """
replicas:
  min_replicas: 2
  max_replicas: 50
  startup_seconds: 90
  behavior:
    scale_up:
      stabilization_window_seconds: 60
"""


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        pytest.param(
            "",
            {"min_replicas": 2, "max_replicas": 50, "startup_seconds": 90, "scale_up_window": 60},
            id="no-override-is-the-global-settings",
        ),
        pytest.param(
            "replicas: {max_replicas: 8}",
            {"min_replicas": 2, "max_replicas": 8, "startup_seconds": 90, "scale_up_window": 60},
            id="an-override-replaces-only-what-it-sets",
        ),
        pytest.param(
            "replicas: {max_replicas: null, startup_seconds: 30}",
            {"min_replicas": 2, "max_replicas": 50, "startup_seconds": 30, "scale_up_window": 60},
            id="null-in-an-override-inherits",
        ),
        pytest.param(
            "replicas: {behavior: {scale_down: {stabilization_window_seconds: 10}}}",
            {"min_replicas": 2, "max_replicas": 50, "startup_seconds": 90, "scale_up_window": 0},  # k8s default, not 60
            id="an-overriding-behavior-replaces-the-global-one-as-a-whole",
        ),
    ],
)
def test_effective_replicas_merges_the_override_onto_the_global_settings(override, expected):
    loaded = load(GLOBAL_REPLICAS + "workloads:\n  - namespace: shop\n    name: web\n    " + override + "\n")

    effective = loaded.effective_replicas(loaded.workloads[0])

    behavior = effective.to_behavior()
    assert behavior is not None
    assert {
        "min_replicas": effective.min_replicas,
        "max_replicas": effective.max_replicas,
        "startup_seconds": effective.startup_seconds,
        "scale_up_window": behavior.scale_up.stabilization_window_seconds,
    } == expected


GLOBAL_FORECAST = """
forecast:
  quantile: 0.8
  lower_quantile_to: [0.6]
"""


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        pytest.param("", (0.8, [0.975], [0.6], 0.5, "auto"), id="no-override-is-the-global-settings"),
        pytest.param("forecast: {}", (0.8, [0.975], [0.6], 0.5, "auto"), id="an-empty-override"),
        pytest.param(
            "forecast: {quantile: 0.95, lower_quantile_to: [], lean_quantile: null}",
            (0.95, [0.975], [], None, "auto"),
            id="a-latency-sensitive-workload-without-lower-rungs",
        ),
        pytest.param("forecast: {lean_quantile: 0.4, model: naive}", (0.8, [0.975], [0.6], 0.4, "naive"),
                     id="an-override-replaces-only-what-it-writes"),
    ],
)
def test_effective_forecast_merges_the_keys_a_workload_writes(override, expected):
    loaded = load(GLOBAL_FORECAST + "workloads:\n  - namespace: shop\n    name: web\n    " + override + "\n")

    effective = loaded.effective_forecast(loaded.workloads[0])

    assert (effective.quantile, effective.raise_quantile_to, effective.lower_quantile_to, effective.lean_quantile,
            effective.model) == expected
    assert loaded.forecast.lean_quantile == 0.5  # the global settings are untouched


def test_effective_forecast_names_the_workload_when_the_merge_is_invalid():
    loaded = load("forecast: {lean_quantile: null}")
    outsider = settings.WorkloadSettings(namespace="shop", name="web", forecast={"lower_quantile_to": [0.9]})

    with pytest.raises(settings.SettingsError) as caught:
        loaded.effective_forecast(outsider)

    [problem] = caught.value.problems
    assert problem.path == "forecast"
    assert "lower_quantile_to must be descending" in problem.message and "Deployment/shop/web" in problem.message


def test_effective_replicas_names_the_workload_when_the_merge_is_invalid():
    loaded = load("replicas: {min_replicas: 5}")
    outsider = settings.WorkloadSettings(namespace="shop", name="web", replicas={"max_replicas": 3})

    with pytest.raises(settings.SettingsError) as caught:
        loaded.effective_replicas(outsider)

    [problem] = caught.value.problems
    assert problem.path == "replicas.max_replicas"
    assert "Deployment/shop/web" in problem.message


def test_a_workload_maps_to_its_reference_mode_and_query():
    loaded = load(
        """
        loop: {default_mode: active}
        workloads:
          - {namespace: shop, name: web}
          - namespace: shop
            name: db
            kind: StatefulSet
            mode: recommend
            load_query: 'sum(up{namespace="$namespace",statefulset="${name}"})'
        """
    )
    web, db = loaded.workloads

    assert loaded.workload_ref(db) == domain.WorkloadRef(namespace="shop", name="db", kind="StatefulSet", api_version="apps/v1")
    assert (loaded.effective_mode(web), loaded.effective_mode(db)) == ("active", "recommend")
    assert loaded.effective_load_template(web) == loaded.metrics.load_query
    assert loaded.effective_load_template(db) == 'sum(up{namespace="$namespace",statefulset="${name}"})'
    # The loop fills them with the Prometheus adapter's escaping renderer.
    assert render_query(loaded.effective_load_template(web), namespace="shop", name="web") == (
        'sum(rate(http_requests_total{namespace="shop",pod=~"web-.*"}[1m]))'
    )
    assert render_query(loaded.effective_load_template(db), namespace="shop", name='d"b') == (
        'sum(up{namespace="shop",statefulset="d\\"b"})'
    )


# ---------------------------------------------------------------------------------------------
# ConfigMaps
# ---------------------------------------------------------------------------------------------


def test_configmap_data_holds_the_settings_under_config_yaml():
    loaded = settings.ControllerSettings.from_configmap(
        {"config.yaml": "loop:\n  interval_seconds: 5\n", "README": "ignored"}
    )

    assert loaded.loop.interval_seconds == 5


def test_configmap_data_without_config_yaml_is_a_problem():
    with pytest.raises(settings.SettingsError) as caught:
        settings.ControllerSettings.from_configmap({"config.yml": "loop: {}"}, source="scaleahead/scaleahead-config")

    assert [p.path for p in caught.value.problems] == ["config.yaml"]
    assert str(caught.value).startswith("scaleahead/scaleahead-config: config.yaml: missing")


def test_configmap_data_problems_carry_lines_of_the_config_yaml_text():
    with pytest.raises(settings.SettingsError) as caught:
        settings.ControllerSettings.from_configmap({"config.yaml": "loop:\n  interval_seconds: -1\n"})

    assert [(p.path, p.line) for p in caught.value.problems] == [("loop.interval_seconds", 2)]


MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: scaleahead-config
data:
  config.yaml: {style}
"""


@pytest.mark.parametrize(
    ("config_yaml", "path", "line"),
    [
        pytest.param(
            "|\n    loop:\n      interval_seconds: 5\n    replicas:\n      max_replicas: 0\n",
            "replicas.max_replicas", 10,  # `|` on line 6 + line 4 of config.yaml
            id="literal-block-points-into-the-manifest",
        ),
        pytest.param(
            '"replicas:\\n  max_replicas: 0\\n"\n',
            "replicas.max_replicas", 6,  # the line of the `config.yaml` key: quoted text has no lines to map
            id="quoted-text-points-at-the-key",
        ),
        pytest.param(
            "|\n    loop: [\n",
            "", 8,
            id="unparsable-embedded-yaml-points-into-the-manifest",
        ),
    ],
)
def test_a_configmap_manifest_is_read_from_its_config_yaml(config_yaml, path, line):
    with pytest.raises(settings.SettingsError) as caught:
        settings.ControllerSettings.from_yaml(MANIFEST.format(style=config_yaml), source="cm.yaml")

    assert [(p.path, p.line) for p in caught.value.problems] == [(path, line)]


def test_a_valid_configmap_manifest_loads_its_settings():
    loaded = settings.ControllerSettings.from_yaml(MANIFEST.format(style="|\n    loop: {interval_seconds: 5}\n"))

    assert loaded.loop.interval_seconds == 5


def test_a_configmap_manifest_without_config_yaml_is_a_problem():
    text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  other: x\n"

    with pytest.raises(settings.SettingsError) as caught:
        settings.ControllerSettings.from_yaml(text)

    assert [(p.path, p.line) for p in caught.value.problems] == [("data.config.yaml", 3)]


@pytest.mark.parametrize("ladder", ["[0.8]", "[0.95, 0.9]", "[0.85]", "[0.95, 1.0]"])
def test_a_quantile_ladder_not_ascending_above_the_quantile_is_reported_at_forecast(ladder):
    problems = problems_of(f"forecast:\n  quantile: 0.85\n  raise_quantile_to: {ladder}\n")

    assert [p.path for p in problems] == ["forecast"]
    assert "raise_quantile_to must be ascending quantiles in (0, 1) above quantile 0.85" in problems[0].message


@pytest.mark.parametrize("ladder", ["[0.9]", "[0.6, 0.7]", "[0.85]", "[0.6, 0.0]"])
def test_a_lower_ladder_not_descending_below_the_quantile_is_reported_at_forecast(ladder):
    problems = problems_of(f"forecast:\n  quantile: 0.85\n  lower_quantile_to: {ladder}\n")

    assert [p.path for p in problems] == ["forecast"]
    assert "lower_quantile_to must be descending quantiles in (0, 1) below quantile 0.85" in problems[0].message


def test_a_quantile_below_the_default_lower_rung_says_how_to_turn_lowering_off():
    # quantile 0.5 alone clashes with the default lower_quantile_to [0.7, 0.6]; the message says what to set.
    problems = problems_of("forecast:\n  quantile: 0.5\n")

    assert [p.path for p in problems] == ["forecast"]
    assert "below quantile 0.5, got [0.7, 0.6] (set it to [] to never lower the quantile)" in problems[0].message
    # then the lean rung (0.5 by default) is not below it either
    problems = problems_of("forecast:\n  quantile: 0.5\n  lower_quantile_to: []\n")
    assert [p.path for p in problems] == ["forecast"]
    assert "lean_quantile must be below quantile and every lower_quantile_to (0.5), got 0.5 (null turns it off)" in problems[0].message
    assert load("forecast:\n  quantile: 0.5\n  lower_quantile_to: []\n  lean_quantile: null\n").forecast.quantile == 0.5
    assert load("forecast:\n  quantile: 0.5\n  lower_quantile_to: []\n  lean_quantile: 0.4\n").forecast.lean_quantile == 0.4


def test_the_lean_rung_must_be_the_lowest():
    problems = problems_of("forecast:\n  lower_quantile_to: [0.7, 0.45]\n")
    assert [p.path for p in problems] == ["forecast"]
    assert "every lower_quantile_to (0.45), got 0.5" in problems[0].message
    assert [p.path for p in problems_of("forecast:\n  lean_quantile: 1.0\n")] == ["forecast.lean_quantile"]


def test_empty_quantile_ladders_without_the_hpa_rung_turn_the_hpa_reference_off():
    from controller import policies

    workload = settings.WorkloadSettings(namespace="a", name="b")
    no_ladder = "forecast:\n  raise_quantile_to: []\n  lower_quantile_to: []\n"
    assert policies.reference_params(load(no_ladder + "  lean_quantile: null\n  fallback_to_hpa: false\n"), workload) is None
    only_hpa = policies.reference_params(load(no_ladder + "  lean_quantile: null\n"), workload)
    assert only_hpa.quantiles == (0.85,) and only_hpa.hpa_rung and not only_hpa.lean
    lean_only = policies.reference_params(load(no_ladder), workload)
    assert lean_only.quantiles == (0.85, 0.5) and lean_only.lean
    assert policies.reference_params(load("forecast:\n  raise_quantile_to: []\n"), workload).quantiles == (0.85, 0.7, 0.6, 0.5)
    plain = policies.reference_params(load("forecast:\n  lower_quantile_to: []\n  lean_quantile: null\n"), workload)
    assert plain.quantiles == (0.85, 0.975) and not plain.lean
    reference = policies.reference_params(load(""), workload)
    assert reference.quantiles == (0.85, 0.975, 0.7, 0.6, 0.5) and reference.lean and reference.days == 3
    assert reference.hpa_rung
    assert reference.hpa.target_utilization_ratio == 0.7 and reference.hpa.max_replicas == 100
    assert reference.score_delay_seconds == 45.0 and reference.slack == 0.0
    assert policies.reference_params(load("metrics:\n  trail_seconds: 75\n"), workload).score_delay_seconds == 75.0
    assert reference.make_up
    assert not policies.reference_params(load("forecast:\n  make_up_shortfall: false\n"), workload).make_up
    assert [p.path for p in problems_of("forecast:\n  make_up_shortfall: maybe\n")] == ["forecast.make_up_shortfall"]
    assert reference.spend
    assert not policies.reference_params(load("forecast:\n  spend_savings_on_service: false\n"), workload).spend


def test_the_metric_trail_is_a_bounded_number_of_seconds():
    for bad in ("-15", "7200", "soon"):
        problems = problems_of(f"metrics:\n  trail_seconds: {bad}\n")
        assert [p.path for p in problems] == ["metrics.trail_seconds"], bad


def test_a_workload_keeps_its_own_quantile_ladder():
    from controller import policies

    loaded = load(
        """
        workloads:
          - {namespace: shop, name: web}
          - namespace: shop
            name: checkout
            forecast: {quantile: 0.95, lower_quantile_to: [], lean_quantile: null, reference_days: 5}
          - namespace: shop
            name: batch
            forecast: {raise_quantile_to: [], lower_quantile_to: [], lean_quantile: null, fallback_to_hpa: false}
        """
    )
    web, checkout, batch = loaded.workloads

    assert policies.reference_params(loaded, web).quantiles == (0.85, 0.975, 0.7, 0.6, 0.5)
    own = policies.reference_params(loaded, checkout)
    assert own.quantiles == (0.95, 0.975) and not own.lean and own.days == 5
    assert policies.reference_params(loaded, batch) is None  # no ladder, no HPA rung: no counterfactual HPA
    assert policies.planner_params(loaded, checkout).quantile == 0.95
    assert policies.planner_params(loaded, web).quantile == 0.85
