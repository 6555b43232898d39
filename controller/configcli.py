"""The ``scaleahead config`` command: validate a settings file, print the schema or the defaults.

``config defaults`` prints the ConfigMap manifest kept in ``manifests/configmap.yaml``. It is
rendered from the models by hand rather than with ``yaml.safe_dump`` so that every setting
carries its description as a comment and ``config.yaml`` is a literal block that reads (and
diffs) like the file a user edits. A test checks that the output loads back to the defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from controller import domain, errors, settings

#: The workload shown in ``config defaults``, so that the per-workload shape is visible. It is
#: in ``recommend`` mode, so deploying the manifest unchanged never scales anything.
EXAMPLE_WORKLOAD = settings.WorkloadSettings(
    namespace="default",
    name="example",
    mode="recommend",
    replicas=settings.ReplicaOverrides(
        min_replicas=2,
        max_replicas=20,
        behavior=settings.BehaviorSettings.from_behavior(domain.default_behavior()),
    ),
)

CONFIGMAP_NAME = "scaleahead-config"
CONFIGMAP_NAMESPACE = "scaleahead"

_COMMENT_WIDTH = 100


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``config`` and its sub-commands on the ``scaleahead`` command's sub-parsers."""
    parser = subparsers.add_parser(
        "config",
        help="validate settings, print their schema or defaults",
        description="Work with the controller's settings (the scaleahead-config ConfigMap).",
    )
    commands = parser.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")

    validate_parser = commands.add_parser(
        "validate",
        help="check a settings file or ConfigMap manifest",
        description="Check a settings file (or a ConfigMap manifest holding it under data.config.yaml)"
        " and report every problem with its line. Exit code 1 when there are problems.",
    )
    validate_parser.add_argument("file", metavar="FILE", help="YAML file to check; - reads standard input")
    validate_parser.set_defaults(func=validate)

    schema_parser = commands.add_parser("schema", help="print the JSON schema of the settings")
    schema_parser.set_defaults(func=print_schema)

    defaults_parser = commands.add_parser(
        "defaults",
        help="print a ConfigMap manifest with every setting at its default",
        description="Print the ConfigMap manifest with every setting at its default value and an example workload (commented out).",
    )
    defaults_parser.set_defaults(func=print_defaults)


def validate(args: argparse.Namespace) -> int:
    """``config validate FILE``: print every problem to stderr, or a one-line summary to stdout.

    Returns:
        0 when the file is valid, 1 when it has problems.

    Raises:
        errors.UserError: The file does not exist or cannot be read (exit code 2).
    """
    if args.file == "-":
        source, text = "<stdin>", sys.stdin.read()
    else:
        source = args.file
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise errors.UserError(f"{source}: no such file") from None
        except OSError as exc:
            raise errors.UserError(f"{source}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise errors.UserError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        loaded = settings.ControllerSettings.from_yaml(text, source=source)
    except settings.SettingsError as exc:
        for problem in exc.problems:
            print(problem.format(exc.source), file=sys.stderr)
        return 1
    count = len(loaded.workloads)
    print(f"{source}: valid ({count} workload{'' if count == 1 else 's'})")
    return 0


def print_schema(args: argparse.Namespace) -> int:
    """``config schema``: print the JSON schema of ``ControllerSettings``, indented."""
    print(json.dumps(settings.ControllerSettings.model_json_schema(), indent=2))
    return 0


def print_defaults(args: argparse.Namespace) -> int:
    """``config defaults``: print the ConfigMap manifest of the defaults (``manifests/configmap.yaml``)."""
    print(render_defaults(), end="")
    return 0


def render_defaults() -> str:
    """The ConfigMap manifest with every setting at its default, no workload, and
    ``EXAMPLE_WORKLOAD`` commented out below ``workloads: []`` (applied unchanged, the manifest
    manages nothing: an example target that does not exist would only log errors)."""
    text = render_configmap(settings.ControllerSettings())
    renderer = _Renderer()
    renderer.value("workloads", (EXAMPLE_WORKLOAD,), indent=0)
    example = [
        "# An example: remove the line above and the leading '# ' of the lines below, then edit.",
        *(f"# {line}" for line in renderer.lines),
    ]
    empty = "    workloads: []\n"
    assert text.endswith(empty), "workloads is the last group"
    return text + "".join(f"    {line}\n" for line in example)


def render_configmap(config: settings.ControllerSettings) -> str:
    """A ConfigMap manifest whose ``data["config.yaml"]`` holds ``config`` as commented YAML.

    Args:
        config: The settings to render; every field is written out, not only those that differ
            from the defaults.

    Returns:
        The manifest text, ending in a newline.
    """
    header = [
        "# Settings of the scaleahead controller: every setting at its default, and an example workload",
        "# (commented out at the end). Generated by `scaleahead config defaults`. Check a changed copy with",
        "# `scaleahead config validate FILE`; `scaleahead config schema` prints the full JSON schema. The",
        "# example workload spells out the Kubernetes default behavior.",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: {CONFIGMAP_NAME}",
        f"  namespace: {CONFIGMAP_NAMESPACE}",
        "data:",
        f"  {settings.CONFIGMAP_KEY}: |",
    ]
    body = [f"    {line}" if line else "" for line in render_settings(config)]
    return "\n".join(header + body) + "\n"


def render_settings(config: settings.ControllerSettings) -> list[str]:
    """``config`` as YAML lines, each setting preceded by its description as a comment.

    A setting is described where it first appears; repeats (the second workload, the scale-down
    rules after the scale-up ones) are left bare so the comments do not drown the values.
    """
    renderer = _Renderer()
    for name, field in type(config).model_fields.items():
        # A blank line between the groups, so the long document has visible sections.
        if renderer.lines:
            renderer.lines.append("")
        renderer.comment(field.description, indent=0)
        renderer.value(name, getattr(config, name), indent=0)
    return renderer.lines


class _Renderer:
    """Writes settings as YAML lines with comments, remembering which models it has described."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._described: set[type[BaseModel]] = set()

    def model(self, model: BaseModel, *, indent: int) -> None:
        model_type = type(model)
        describe = model_type not in self._described
        self._described.add(model_type)
        # An override lists only what it sets, and only `behavior` needs words there: the other
        # keys mean what they mean under `replicas` or `forecast`.
        for name, field in model_type.model_fields.items():
            value = getattr(model, name)
            if not _written(model, name):
                continue
            if describe and (not _partial(model) or name == "behavior"):
                self.comment(field.description, indent=indent)
            self.value(name, value, indent=indent)

    def value(self, key: str, value: Any, *, indent: int) -> None:
        pad = " " * indent
        if isinstance(value, BaseModel) and not any(_written(value, name) for name in type(value).model_fields):
            self.lines.append(f"{pad}{key}: {{}}")
        elif isinstance(value, BaseModel):
            self.lines.append(f"{pad}{key}:")
            self.model(value, indent=indent + 2)
        elif isinstance(value, tuple | list) and value:
            self.lines.append(f"{pad}{key}:")
            for item in value:
                self.item(item, indent=indent + 2)
        elif isinstance(value, tuple | list):
            self.lines.append(f"{pad}{key}: []")
        else:
            self.lines.append(f"{pad}{key}: {_scalar(value)}")

    def item(self, item: Any, *, indent: int) -> None:
        """One list item at ``indent``: ``- first: ...`` with the rest of its keys aligned under it."""
        pad = " " * indent
        if not isinstance(item, BaseModel):
            self.lines.append(f"{pad}- {_scalar(item)}")
            return
        start = len(self.lines)
        self.model(item, indent=indent + 2)
        # The comments before the first key go above the dash, so the dash starts the mapping.
        first = next(i for i in range(start, len(self.lines)) if not self.lines[i].lstrip().startswith("#"))
        for i in range(start, first):
            self.lines[i] = pad + self.lines[i].lstrip()
        self.lines[first] = f"{pad}- {self.lines[first].lstrip()}"

    def comment(self, description: str | None, *, indent: int) -> None:
        if description:
            prefix = " " * indent + "# "
            self.lines.extend(
                textwrap.wrap(
                    description,
                    width=_COMMENT_WIDTH,
                    initial_indent=prefix,
                    subsequent_indent=prefix,
                    break_on_hyphens=False,
                )
            )


def _partial(model: BaseModel) -> bool:
    return isinstance(model, settings.ReplicaOverrides | settings.ForecastOverrides)


def _written(model: BaseModel, name: str) -> bool:
    """Whether ``name`` is written out: always, except in an override, which lists what it sets
    (a forecast override the keys it was given, so that `lean_quantile: null` survives)."""
    if isinstance(model, settings.ForecastOverrides):
        return name in model.model_fields_set
    if isinstance(model, settings.ReplicaOverrides):
        return getattr(model, name) is not None
    return True


def _scalar(value: Any) -> str:
    """A scalar in YAML spelling, quoted only where YAML needs it."""
    if isinstance(value, Path):
        value = str(value)
    elif isinstance(value, str):  # including the StrEnums of controller.domain
        value = str(value.value) if hasattr(value, "value") else value
    text = yaml.safe_dump(value, width=1_000_000)
    return text.removesuffix("\n...\n").removesuffix("\n")
