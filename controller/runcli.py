"""``scaleahead run``: the live controller (and ``--local-demo``, the same loop against a local cluster).

Wiring only: build the real adapters from the settings, the telemetry registry and the
HTTP server, then run the loop (``controller.loop.Controller``) until SIGTERM or SIGINT,
under leader election unless ``--no-leader-election``. ``--once`` runs one tick and exits,
for a first look at what the controller would do.

Where the cluster is: ``--kubeconfig FILE``; else the in-cluster service account when the
process runs in a pod (``KUBERNETES_SERVICE_HOST`` is set); else the default kubeconfig
(``$KUBECONFIG`` or ``~/.kube/config``). The controller's own Pod comes from the downward
API (``POD_NAME``, ``POD_NAMESPACE``): it is the leader-election identity and the object
that settings Events are recorded on (its Namespace when no pod name is known).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from controller.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "0.0.0.0:8080"
DEFAULT_LEASE_NAME = "scaleahead"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``run``."""
    p = sub.add_parser(
        "run",
        help="run the controller against a cluster (or --local-demo: against a local emulated cluster)",
        description="Run the control loop: read the settings (a mounted ConfigMap), forecast each workload's load "
        "from Prometheus and scale it through the Kubernetes API. Serves /metrics, /healthz, /readyz and "
        "/debug/decisions. Stops gracefully on SIGTERM.",
    )
    p.add_argument("--settings", metavar="FILE", help="the settings YAML (or a ConfigMap manifest); watched for changes")
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig of the cluster (default: in-cluster, else ~/.kube/config)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, type=_listen_argument, metavar="HOST:PORT",
                   help=f"address of the HTTP server (default {DEFAULT_LISTEN})")  # fmt: skip
    p.add_argument("--no-leader-election", action="store_true", help="act without holding the Lease (a single replica)")
    p.add_argument("--once", action="store_true", help="run one tick, print its decisions and exit")
    p.add_argument("--lease-name", default=DEFAULT_LEASE_NAME, help=f"name of the leader-election Lease (default {DEFAULT_LEASE_NAME})")
    p.add_argument("--lease-namespace", default=None, help="namespace of the Lease (default $POD_NAMESPACE, else default)")
    p.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
                   help=f"log level of the JSON logs: {', '.join(LOG_LEVELS)} (default INFO)")  # fmt: skip
    demo = p.add_argument_group("local demo")
    demo.add_argument("--local-demo", action="store_true",
                      help="start a local Prometheus and Kubernetes API emulator replaying a bundled trace, "
                           "run the real controller against them and write the simulate report")  # fmt: skip
    demo.add_argument("--duration-seconds", type=float, default=90.0, help="how long the demo runs (default 90)")
    demo.add_argument("--trace", metavar="FILE", help="trace CSV to replay (default: the bundled nab_elb_requests.csv)")
    demo.add_argument("--step-seconds", type=float, default=3.0, help="wall seconds per 5-minute trace step (default 3)")
    demo.add_argument("--report", default="scaleahead-demo-report.html", metavar="OUT.html",
                      help="where the demo writes the simulate report of the trace")  # fmt: skip
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.local_demo:
        from controller.sim import localcluster

        return localcluster.main(args)
    if not args.settings:
        raise UserError("run needs --settings FILE (or --local-demo)")
    from controller.settings import load_settings
    from controller.server import configure_json_logging

    settings = load_settings(args.settings)  # a SettingsError is a UserError: exit 2 with every problem
    host, port = parse_listen(args.listen)
    configure_json_logging(args.log_level.upper())
    try:
        return asyncio.run(
            run_controller(
                settings,
                settings_path=Path(args.settings),
                kubeconfig=args.kubeconfig,
                host=host,
                port=port,
                leader_election=not args.no_leader_election,
                once=args.once,
                lease_name=args.lease_name,
                lease_namespace=args.lease_namespace,
            )
        )
    except KeyboardInterrupt:
        return 130


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> ``(host, port)``; the port is 0 to 65535 (0: a free one)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"--listen must be HOST:PORT, got {text!r}")
    if int(port) > 65535:
        raise UserError(f"--listen {text}: the port must be 0 to 65535, got {int(port)}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _listen_argument(text: str) -> str:
    """argparse ``type`` of ``--listen``: checks it (``parse_listen``), keeps the text."""
    try:
        parse_listen(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--listen ")) from None
    return text


async def load_cluster_config(kubeconfig: str | None) -> Any:
    """A ``kubernetes_asyncio`` ``Configuration``: the kubeconfig, in-cluster, or the default kubeconfig."""
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio import config as k8s_config

    configuration = k8s.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except (k8s_config.ConfigException, OSError) as exc:
            raise UserError(f"cannot load the in-cluster configuration (service account): {exc}") from None
        return configuration
    files = _kubeconfig_files(kubeconfig)
    where = ", ".join(files)
    try:
        await k8s_config.load_kube_config(config_file=os.pathsep.join(files), client_configuration=configuration)
    except Exception as exc:  # the library raises TypeError, KeyError, ValueError ... on a malformed file
        raise UserError(f"cannot load the cluster configuration from the kubeconfig {where}: {exc}") from None
    return configuration


def _kubeconfig_files(kubeconfig: str | None) -> list[str]:
    """The kubeconfig files to load, each checked to be a readable YAML mapping.

    ``kubeconfig`` (``--kubeconfig``) must exist; without it, the files of ``$KUBECONFIG``
    that exist (it may list several), else ``~/.kube/config``.

    Raises:
        UserError: no such file, not a file, unreadable, not YAML, or YAML but not a mapping.
    """
    import yaml

    if kubeconfig is not None:
        flag = f"--kubeconfig {kubeconfig}"
        if not os.path.exists(kubeconfig):
            raise UserError(f"{flag}: no such file")
        files = [kubeconfig]
    else:
        listed = os.environ.get("KUBECONFIG", "")
        candidates = [os.path.expanduser(f) for f in listed.split(os.pathsep) if f] if listed else []
        default = os.path.expanduser("~/.kube/config")
        files = [f for f in candidates if os.path.exists(f)] if candidates else ([default] if os.path.exists(default) else [])
        if not files:
            source = f"the files of $KUBECONFIG ({listed}) do not exist" if candidates else f"there is no {default}"
            raise UserError(
                "no cluster configuration: not running in a pod (KUBERNETES_SERVICE_HOST is not set) and "
                f"{source}; pass --kubeconfig FILE"
            )
    for f in files:
        if os.path.isdir(f):
            raise UserError(f"the kubeconfig {f} is a directory, not a file")
        try:
            with open(f, encoding="utf-8") as stream:
                data = yaml.safe_load(stream)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the kubeconfig {f}: {getattr(exc, 'strerror', None) or exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1})" if mark is not None else ""
            raise UserError(f"the kubeconfig {f} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
        if not isinstance(data, dict):
            found = "empty" if data is None else f"a {type(data).__name__}"
            raise UserError(f"the kubeconfig {f} is not a kubeconfig: expected a YAML mapping "
                            f"(clusters, contexts, users, current-context), found {found}")  # fmt: skip
    return files


def print_once(controller: Any, decisions: Any, out: Any = None) -> int:
    """``--once``: print each workload's decision, or why it has none; 1 when a workload failed.

    A workload whose reconcile failed (or whose policy could not be built) prints its last
    error; one that is not scaled because something else scales it says so.
    """
    out = out or sys.stdout
    latest = decisions.snapshot(limit=1)
    failed = 0
    for m in sorted(controller.workloads.values(), key=lambda m: m.label):
        if m.policy is None or m.failures > 0:
            failed += 1
            print(f"{m.label}: failed: {m.last_error or 'no decision'}", file=out, flush=True)
        elif m.conflicts:
            print(f"{m.label}: not scaled: already scaled by {', '.join(m.conflicts)}", file=out, flush=True)
        else:
            for entry in latest.get(m.label, [])[-1:]:
                print(f"{m.label}: {entry['from']} -> {entry['to']} ({entry['reason']}) {entry['message']}", file=out, flush=True)
    if not controller.workloads:
        print("no workloads to manage: the settings list none and discovery found none", file=out, flush=True)
    return 1 if failed else 0


def own_identity() -> tuple[str, str, str | None]:
    """``(identity, namespace, pod_name)`` of this replica from the downward API, else the host name."""
    pod = os.environ.get("POD_NAME") or None
    namespace = os.environ.get("POD_NAMESPACE") or "default"
    return pod or socket.gethostname(), namespace, pod


async def run_controller(
    settings: Any,
    *,
    settings_path: Path | None,
    kubeconfig: str | None = None,
    configuration: Any = None,
    host: str = "0.0.0.0",
    port: int = 8080,
    leader_election: bool = True,
    once: bool = False,
    lease_name: str = DEFAULT_LEASE_NAME,
    lease_namespace: str | None = None,
    lease_timings: Any = None,
    identity: str | None = None,
    stop: asyncio.Event | None = None,
    policy_factory: Any = None,
    on_ready: Any = None,
    handle_signals: bool = True,
) -> int:
    """Run the controller until SIGTERM/SIGINT (or ``stop`` is set); return the exit code.

    Args:
        settings: the loaded ``ControllerSettings``.
        settings_path: the file to watch for changes (``None``: no reload).
        kubeconfig: kubeconfig file; see ``load_cluster_config``.
        configuration: a ready ``kubernetes_asyncio`` ``Configuration`` (tests, the demo); wins over ``kubeconfig``.
        host: address of the HTTP server.
        port: its port (0: a free one).
        leader_election: hold a Lease before acting.
        once: one tick, then exit.
        lease_name: the Lease's name.
        lease_namespace: its namespace (default: the controller's).
        lease_timings: ``leader.LeaseTimings`` (default: 15 s / 10 s / 2 s).
        identity: this replica's identity (default: pod name, else host name).
        stop: set it to stop the controller (as SIGTERM does).
        policy_factory: overrides ``loop.build_predictive_policy`` (the demo's time scale).
        on_ready: called with ``(controller, server)`` once everything runs.
        handle_signals: install the SIGTERM/SIGINT handlers.
    """
    from kubernetes_asyncio import client as k8s
    from prometheus_client import CollectorRegistry

    from controller import leader, loop, server
    from controller.adapters.kube import KubeAdapter
    from controller.adapters.prometheus import PrometheusMetricsSource
    from controller.clock import SystemClock
    from controller.domain import WorkloadRef
    from controller.telemetry import Telemetry

    own, namespace, pod = own_identity()
    identity = identity or own
    lease_namespace = lease_namespace or namespace
    if configuration is None:
        configuration = await load_cluster_config(kubeconfig)
    clock = SystemClock()
    telemetry = Telemetry(CollectorRegistry())
    telemetry.set_phase("starting")
    health = server.Health(stall_after_seconds=4 * settings.loop.interval_seconds + 60)
    decisions = server.DecisionLog()
    def connect(m: Any) -> PrometheusMetricsSource:
        return PrometheusMetricsSource(
            m.prometheus_url, bearer_token_file=m.bearer_token_file, ca_file=m.ca_file,
            insecure_skip_verify=m.insecure_skip_tls_verify, timeout_seconds=m.timeout_seconds,
            sleep=clock.sleep, on_request=telemetry.record_prometheus,
        )  # fmt: skip

    metrics = connect(settings.metrics)
    stop = stop or asyncio.Event()
    async with k8s.ApiClient(configuration) as api:
        api.user_agent = f"scaleahead/{identity}"
        kube = KubeAdapter(api, clock=clock, on_call=telemetry.record_kube, instance=identity)
        elector = None
        if leader_election:
            elector = leader.LeaderElector(
                api, name=lease_name, namespace=lease_namespace, identity=identity,
                timings=lease_timings or leader.LeaseTimings(), on_change=telemetry.set_leader, on_call=telemetry.record_kube,
            )  # fmt: skip
        self_ref = (
            WorkloadRef(namespace, pod, kind="Pod", api_version="v1")
            if pod else WorkloadRef(namespace, namespace, kind="Namespace", api_version="v1")
        )  # fmt: skip
        controller = loop.Controller(
            settings, clock=clock, metrics=metrics, kube=kube, telemetry=telemetry, health=health,
            decisions=decisions, policy_factory=policy_factory, settings_path=settings_path,
            discovery=loop.AnnotationDiscovery(api, on_call=telemetry.record_kube), self_ref=self_ref,
            may_act=elector.is_leading if elector is not None else (lambda: True), metrics_factory=connect,
        )  # fmt: skip
        app = server.make_app(telemetry=telemetry, health=health, decisions=decisions)
        running_loop = asyncio.get_running_loop()
        installed: list[int] = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    running_loop.add_signal_handler(sig, stop.set)
                    installed.append(sig)
        try:
            async with contextlib.AsyncExitStack() as serving:
                try:
                    listening = await serving.enter_async_context(server.serve(app, host, port))
                except (OSError, OverflowError) as exc:  # in use, not an address of this host, no permission
                    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                    raise UserError(f"--listen {address}: cannot listen there: {getattr(exc, 'strerror', None) or exc}") from None
                log.info("serving /metrics, /healthz, /readyz and /debug/decisions on %s", listening.url)
                if once:
                    telemetry.set_phase("leader")
                    await controller.tick()
                    health.tick_completed()
                    return print_once(controller, decisions)
                tasks = [asyncio.create_task(controller.run(), name="scaleahead-controller")]
                if elector is not None:
                    tasks.append(asyncio.create_task(elector.run(), name="scaleahead-leader-election"))
                if on_ready is not None:
                    on_ready(controller, listening)
                stopper = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
                # Graceful: the tick in flight finishes, then the Lease is released.
                controller.stop()
                await asyncio.wait([tasks[0]], timeout=controller.stop_grace_seconds + 1)
                if elector is not None:
                    await elector.release()
                for task in [*tasks, stopper]:
                    task.cancel()
                results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
                errors = [r for r in results if isinstance(r, Exception)]
                if errors:
                    log.error("the controller failed: %s", errors[0], exc_info=errors[0])
                    return 1
                return 0
        finally:
            for sig in installed:
                running_loop.remove_signal_handler(sig)
            await controller.metrics.aclose()  # the one in use (a reload may have replaced it)
