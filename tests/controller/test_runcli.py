"""``scaleahead run``: as a process it leads, serves its endpoints and stops cleanly on SIGTERM; user mistakes are one error."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from controller import runcli
from controller.__main__ import build_parser, main
from controller.errors import UserError
from controller.settings import ControllerSettings
from controller.sim import kubeapi
from controller.sim.promharness import free_port

ROOT = Path(__file__).resolve().parents[2]


async def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_sigterm_stops_the_controller_gracefully_and_releases_its_lease(tmp_path):
    async with kubeapi.KubeApiServer() as server:
        server.put(kubeapi.make_deployment("web", namespace="shop", replicas=3))
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(server.kubeconfig()))
        dead_prometheus = f"http://127.0.0.1:{free_port()}"  # no Prometheus: the loop must hold, not fail
        settings = tmp_path / "config.yaml"
        settings.write_text(yaml.safe_dump({
            "loop": {"interval_seconds": 1, "default_mode": "active"},
            "metrics": {"prometheus_url": dead_prometheus, "timeout_seconds": 1},
            "workloads": [{"namespace": "shop", "name": "web"}],
        }))
        port = free_port()
        env = {**os.environ, "POD_NAME": "scaleahead-0", "POD_NAMESPACE": "scaleahead"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller", "run", "--settings", str(settings), "--kubeconfig", str(kubeconfig),
            "--listen", f"127.0.0.1:{port}", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as http:

                async def healthy():
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False

                await wait_for(healthy, timeout=30, what="/healthz")

                def lease():
                    return server.get("leases", "scaleahead", "scaleahead")

                async def leading():
                    held = lease()
                    return held is not None and held["spec"].get("holderIdentity") == "scaleahead-0"

                await wait_for(leading, timeout=30, what="the lease")

                async def metrics_say_leader():
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                        return "scaleahead_leader 1.0" in await r.text()

                await wait_for(metrics_say_leader, timeout=10, what="scaleahead_leader 1")
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), timeout=20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        output = (await proc.stdout.read()).decode()
        assert code == 0, output
        # the lease was given up, so a follower need not wait for it to expire
        assert not lease()["spec"].get("holderIdentity"), json.dumps(lease())
        # and the logs are JSON lines that say why it stopped
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert lines, output
        assert any("stop" in line.get("message", "").lower() or "released" in line.get("message", "") for line in lines), output


# -- user mistakes: one clear error line, exit code 2 -------------------------------------------------

@pytest.fixture
def settings_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "loop": {"interval_seconds": 1},
        "metrics": {"prometheus_url": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 1},
        "workloads": [{"namespace": "shop", "name": "web"}],
    }))  # fmt: skip
    return path


@pytest.fixture
def no_json_logging(monkeypatch):
    # `run` installs its JSON log handler on the root logger; keep pytest's
    monkeypatch.setattr("controller.server.configure_json_logging", lambda *a, **k: None)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["--log-level", "bogus"], "argument --log-level: invalid choice: 'BOGUS'", id="log-level"),
        pytest.param(["--listen", ":99999"], "argument --listen: :99999: the port must be 0 to 65535, got 99999", id="port"),
        pytest.param(["--listen", "8080"], "argument --listen: must be HOST:PORT, got '8080'", id="no-colon"),
    ],
)
def test_bad_flags_are_refused_by_argparse(settings_file, capsys, argv, expected):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--settings", str(settings_file), "--once", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and expected in err
    assert "Traceback" not in err


def test_a_lower_case_log_level_is_accepted():
    assert build_parser().parse_args(["run", "--log-level", "debug"]).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("hello world\n", "is not a kubeconfig: expected a YAML mapping (clusters, contexts, users, "
                     "current-context), found a str", id="not-yaml-mapping"),  # fmt: skip
        pytest.param("a: [1\n", "is not valid YAML (line 2)", id="broken-yaml"),
        pytest.param("", "is not a kubeconfig: expected a YAML mapping", id="empty"),
        pytest.param("apiVersion: v1\nkind: Config\n", "Expected key current-context", id="no-context"),
        pytest.param(None, "no such file", id="missing"),
    ],
)
def test_a_bad_kubeconfig_is_one_error_naming_the_file(tmp_path, settings_file, capsys, no_json_logging, content, expected):
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)
    code = main(["run", "--settings", str(settings_file), "--kubeconfig", str(kubeconfig), "--once"])
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("scaleahead: error: ") and str(kubeconfig) in line and expected in line


def test_no_kubeconfig_anywhere_says_so(tmp_path, settings_file, capsys, monkeypatch, no_json_logging):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    code = main(["run", "--settings", str(settings_file), "--once"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip() == (
        "scaleahead: error: no cluster configuration: not running in a pod (KUBERNETES_SERVICE_HOST is not set) "
        f"and there is no {tmp_path}/.kube/config; pass --kubeconfig FILE"
    )


def workload_settings(*names: str) -> ControllerSettings:
    return ControllerSettings.from_yaml(yaml.safe_dump({
        "loop": {"interval_seconds": 1, "default_mode": "active"},
        "metrics": {"prometheus_url": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 1},
        "workloads": [{"namespace": "shop", "name": n} for n in names],
    }), source="config.yaml")  # fmt: skip


async def test_a_port_in_use_is_one_error_naming_the_address():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with kubeapi.KubeApiServer() as server:
            with pytest.raises(UserError, match=rf"--listen 127.0.0.1:{port}: cannot listen there: .*address already in use"):
                await runcli.run_controller(
                    workload_settings("web"), settings_path=None, configuration=server.client_configuration(),
                    host="127.0.0.1", port=port, leader_election=False, once=True, handle_signals=False,
                )  # fmt: skip


async def test_once_prints_each_failed_workload_and_exits_1(capsys):
    async with kubeapi.KubeApiServer() as server:  # neither Deployment exists
        code = await runcli.run_controller(
            workload_settings("web", "api"), settings_path=None, configuration=server.client_configuration(),
            host="127.0.0.1", port=0, leader_election=False, once=True, handle_signals=False,
        )  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 1, out
    assert [line.split(": ")[:2] for line in out] == [["Deployment/shop/api", "failed"], ["Deployment/shop/web", "failed"]]
    assert all("not found" in line for line in out), out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["--trace", "TINY"], "tiny.csv: 3 rows is too short for the demo: --duration-seconds 90 at "
                     "--step-seconds 3 replays 33 rows after at least 48 rows of history, 81 rows in all", id="tiny-trace"),
        pytest.param(["--step-seconds", "nan"], "--step-seconds must be a number of seconds >= 1, got nan", id="step-nan"),
        pytest.param(["--duration-seconds", "nan"], "--duration-seconds must be a positive number of seconds, got nan",
                     id="duration-nan"),
        pytest.param(["--duration-seconds", "-1"], "--duration-seconds must be a positive number of seconds, got -1",
                     id="duration-negative"),
        pytest.param(["--report", "/nonexistent/dir/x.html"],
                     "cannot write the report /nonexistent/dir/x.html: the directory /nonexistent/dir does not exist",
                     id="report-dir"),
    ],
)
def test_local_demo_refuses_bad_flags_before_starting_anything(tmp_path, capsys, monkeypatch, argv, expected):
    def no_demo(**kwargs):
        raise AssertionError("the demo started")

    monkeypatch.setattr("controller.sim.localcluster.run_demo", no_demo)
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("timestamp,value\n0,1\n300,2\n600,3\n")
    argv = [str(tiny) if a == "TINY" else a for a in argv]
    code = main(["run", "--local-demo", "--report", str(tmp_path / "r.html"), *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("scaleahead: error: ") and expected in line
