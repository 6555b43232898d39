"""The ``scaleahead config`` command, run in-process through ``controller.__main__.main``."""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from controller import __main__ as cli
from controller import configcli, settings

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``scaleahead ARGV...``; return the exit code, stdout and stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------------------------
# config validate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "valid (0 workloads)", id="empty-file"),
        pytest.param("workloads:\n  - {namespace: shop, name: web}\n", "valid (1 workload)", id="one-workload"),
        pytest.param(
            "workloads:\n  - {namespace: shop, name: web}\n  - {namespace: shop, name: api}\n",
            "valid (2 workloads)",
            id="two-workloads",
        ),
    ],
)
def test_validate_accepts_a_valid_file_and_counts_its_workloads(capsys, tmp_path, text, expected):
    path = write(tmp_path, text)

    code, out, err = run(capsys, "config", "validate", str(path))

    assert (code, out, err) == (0, f"{path}: {expected}\n", "")


def test_validate_reports_every_mistake_in_a_file(capsys, tmp_path):
    path = write(
        tmp_path,
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
        """,
    )

    code, out, err = run(capsys, "config", "validate", str(path))

    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert [re.match(rf"{re.escape(str(path))}:(\d+): (\S+): .+", line).groups() for line in lines] == [
        ("2", "loop.interval_secnds"),  # unknown key
        ("4", "metrics.timeout_seconds"),  # wrong type
        ("7", "replicas.max_replicas"),  # min > max, next to another error in the same group
        ("10", "replicas.behavior.scale_down.stabilization_window_seconds"),  # negative window
        ("12", "workloads[0].namespace"),  # not a DNS-1123 label
    ]


def test_validate_reports_unparsable_yaml_with_its_line(capsys, tmp_path):
    path = write(tmp_path, "loop:\n  interval_seconds: [15\n")

    code, _, err = run(capsys, "config", "validate", str(path))

    assert code == 1
    assert re.fullmatch(rf"{re.escape(str(path))}:3: invalid YAML: .+\(column \d+\)\n", err)


def test_validate_points_into_a_configmap_manifest(capsys, tmp_path):
    path = write(
        tmp_path,
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: scaleahead-config
        data:
          config.yaml: |
            forecast:
              quantile: 2
        """,
    )

    code, _, err = run(capsys, "config", "validate", str(path))

    assert code == 1
    assert err.startswith(f"{path}:8: forecast.quantile: ")


@pytest.mark.parametrize(
    "make_path",
    [
        pytest.param(lambda tmp_path: tmp_path / "absent.yaml", id="missing-file"),
        pytest.param(lambda tmp_path: tmp_path, id="directory"),
    ],
)
def test_validate_of_an_unreadable_file_is_a_clear_error_with_exit_code_2(capsys, tmp_path, make_path):
    path = make_path(tmp_path)

    code, out, err = run(capsys, "config", "validate", str(path))

    assert code == 2
    assert out == ""
    assert err.startswith(f"scaleahead: error: {path}: ")
    assert "Traceback" not in err


def test_validate_reads_standard_input_for_a_dash(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("loop: {interval_seconds: -1}\n"))

    code, _, err = run(capsys, "config", "validate", "-")

    assert code == 1
    assert err.startswith("<stdin>:1: loop.interval_seconds: ")


# ---------------------------------------------------------------------------------------------
# config schema
# ---------------------------------------------------------------------------------------------


def test_schema_is_json_with_every_group_and_its_descriptions(capsys):
    code, out, _ = run(capsys, "config", "schema")

    schema = json.loads(out)
    assert code == 0
    assert list(schema["properties"]) == list(settings.ControllerSettings.model_fields)
    loop = schema["$defs"]["LoopSettings"]["properties"]["interval_seconds"]
    assert loop["description"] == settings.LoopSettings.model_fields["interval_seconds"].description
    assert loop["default"] == 15
    assert schema["$defs"]["ScalingRulesSettings"]["additionalProperties"] is False
    assert out.startswith("{\n  ")  # pretty-printed


# ---------------------------------------------------------------------------------------------
# config defaults and manifests/configmap.yaml
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def defaults_output(capsys) -> str:
    code, out, _ = run(capsys, "config", "defaults")
    assert code == 0
    return out


def test_defaults_is_a_configmap_with_config_yaml_as_a_literal_block(defaults_output):
    manifest = yaml.safe_load(defaults_output)
    node = yaml.compose(defaults_output)
    data_node = next(value for key, value in node.value if key.value == "data")
    config_node = next(value for key, value in data_node.value if key.value == "config.yaml")

    assert (manifest["apiVersion"], manifest["kind"]) == ("v1", "ConfigMap")
    assert manifest["metadata"] == {"name": "scaleahead-config", "namespace": "scaleahead"}
    assert list(manifest["data"]) == ["config.yaml"]
    assert config_node.style == "|"


def example_config(defaults_output: str) -> str:
    """config.yaml of the defaults with its commented example workload uncommented."""
    config = yaml.safe_load(defaults_output)["data"]["config.yaml"]
    lines = config.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# An example"))
    return "\n".join([line for line in lines[:start] if line != "workloads: []"] + [line[2:] for line in lines[start + 1 :]]) + "\n"


def test_defaults_load_back_to_the_defaults_and_manage_nothing(defaults_output):
    loaded = settings.ControllerSettings.from_yaml(defaults_output)

    assert loaded == settings.ControllerSettings()
    assert loaded.workloads == ()  # applied unchanged, the manifest manages nothing


def test_the_commented_example_workload_loads_once_uncommented(defaults_output):
    loaded = settings.ControllerSettings.from_yaml(example_config(defaults_output))

    assert loaded.workloads == (configcli.EXAMPLE_WORKLOAD,)
    assert loaded.effective_replicas(loaded.workloads[0]).to_behavior() is not None


def test_defaults_write_out_every_setting(defaults_output):
    config = yaml.safe_load(yaml.safe_load(defaults_output)["data"]["config.yaml"])

    assert set(config) == set(settings.ControllerSettings.model_fields)
    for group in ("loop", "metrics", "forecast", "replicas", "nodepools", "deschedule"):
        model = settings.ControllerSettings.model_fields[group].annotation
        assert set(config[group]) == set(model.model_fields), group
    assert config["workloads"] == []
    example = yaml.safe_load(example_config(defaults_output))
    assert set(example["workloads"][0]) == set(settings.WorkloadSettings.model_fields)


def test_defaults_describe_the_settings_in_comments(defaults_output):
    description = settings.LoopSettings.model_fields["max_concurrent_workloads"].description

    assert f"      # {description}\n      max_concurrent_workloads: 16\n" in defaults_output


def test_defaults_pass_validate(capsys, tmp_path, defaults_output):
    path = write(tmp_path, defaults_output, name="configmap.yaml")

    code, out, err = run(capsys, "config", "validate", str(path))

    assert (code, out, err) == (0, f"{path}: valid (0 workloads)\n", "")


def test_the_configmap_in_manifests_is_the_output_of_config_defaults(defaults_output):
    committed = (ROOT / "manifests" / "configmap.yaml").read_text()

    assert committed == defaults_output, "run: scaleahead config defaults > manifests/configmap.yaml"


def test_a_rendered_forecast_override_keeps_what_it_writes_null_included():
    workload = settings.WorkloadSettings(
        namespace="shop", name="checkout", forecast={"quantile": 0.95, "lower_quantile_to": [], "lean_quantile": None}
    )
    config = settings.ControllerSettings(workloads=(workload,))

    text = configcli.render_configmap(config)
    loaded = settings.ControllerSettings.from_yaml(text)

    assert "        forecast:\n          quantile: 0.95\n          lower_quantile_to: []\n          lean_quantile: null\n" in text
    effective = loaded.effective_forecast(loaded.workloads[0])
    assert (effective.quantile, effective.lower_quantile_to, effective.lean_quantile) == (0.95, [], None)
    assert loaded.forecast.lean_quantile == 0.5
