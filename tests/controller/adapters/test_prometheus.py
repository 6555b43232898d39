"""The Prometheus adapter against a real Prometheus (``prom_history`` in conftest.py).

Only the cases Prometheus cannot produce on demand (a request that hangs, the
headers a client sends) use a local aiohttp server standing in for it.
"""

from __future__ import annotations

import asyncio
import base64
import math
import string

import numpy as np
import pytest
from aiohttp import web

from controller.adapters import prometheus
from controller.domain import Sample
from controller.sim import promharness


class RecordingSleep:
    """The injectable backoff sleep: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def make_source():
    """Build adapters and close them all after the test."""
    made: list[prometheus.PrometheusMetricsSource] = []

    def make(url: str, **kwargs) -> prometheus.PrometheusMetricsSource:
        kwargs.setdefault("timeout_seconds", 5.0)
        kwargs.setdefault("sleep", RecordingSleep())
        source = prometheus.PrometheusMetricsSource(url, **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        await source.aclose()


class FakePrometheus:
    """A local aiohttp server answering ``/api/v1/query``: records requests, can hang or fail on request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.hang = False
        self.status = 200
        self.html = False
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        if self.hang:
            await self.release.wait()
        if self.html:
            return web.Response(text="<html>login page</html>", content_type="text/html")
        if self.status != 200:
            return web.json_response({"status": "error", "errorType": "internal", "error": "boom"}, status=self.status)
        at = float(request.query["time"])
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [at, "1"]}]}}
        )

    async def __aenter__(self) -> FakePrometheus:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.runner is not None
        await self.runner.cleanup()


# --------------------------------------------------------------------------- values and timestamps


async def test_an_instant_query_returns_the_backfilled_value_at_the_requested_time(prom_history, make_source):
    source = make_source(prom_history.url)
    at = prom_history.t0 + 15 * 7
    sample = await source.instant('load_gauge{namespace="shop",workload="web"}', at)
    assert sample == Sample(value=17.0, at=at)  # 10 + 7


async def test_a_rate_query_recovers_the_backfilled_load(prom_history, make_source):
    source = make_source(prom_history.url)
    query = prometheus.render_query(
        'sum(rate(http_requests_total{namespace="$namespace",pod=~"$name-.*"}[1m]))', namespace="shop", name="web"
    )
    before = await source.instant(query, prom_history.t0 + 20 * 60)
    after = await source.instant(query, prom_history.t0 + 50 * 60)
    assert before is not None and before.value == pytest.approx(8.0)  # 5 (web-1) + 3 (web-2)
    assert after is not None and after.value == pytest.approx(15.0)  # 12 + 3


async def test_a_range_query_returns_the_backfilled_points_with_their_timestamps(prom_history, make_source):
    source = make_source(prom_history.url)
    t0 = prom_history.t0
    series = await source.range('load_gauge{namespace="shop",workload="web"}', t0, t0 + 600, 60)
    np.testing.assert_array_equal(series.timestamps, t0 + 60 * np.arange(11))
    np.testing.assert_array_equal(series.values, 10.0 + 4 * np.arange(11))  # one sample per 15 s, every 4th


async def test_a_long_range_is_fetched_in_chunks_and_joined_without_gaps_or_duplicates(prom_history, make_source):
    events: list[prometheus.QueryEvent] = []
    whole = make_source(prom_history.url)
    chunked = make_source(prom_history.url, max_points_per_request=4, on_request=events.append)
    t0, query = prom_history.t0, 'load_gauge{namespace="shop",workload="web"}'
    expected = await whole.range(query, t0, t0 + 600, 60)
    got = await chunked.range(query, t0, t0 + 600, 60)
    np.testing.assert_array_equal(got.timestamps, expected.timestamps)
    np.testing.assert_array_equal(got.values, expected.values)
    assert [e.endpoint for e in events] == ["query_range"] * 3  # 11 points: 4 + 4 + 3
    assert all(e.error is None and e.status == 200 and e.duration_seconds >= 0 for e in events)


async def test_nan_and_infinite_points_of_a_range_are_gaps(prom_history, make_source):
    source = make_source(prom_history.url)
    t0, g = prom_history.t0, 'load_gauge{namespace="shop",workload="web"}'
    series = await source.range(f"({g} - 14) / ({g} - 14)", t0, t0 + 600, 60)  # 0/0 where the gauge is 14
    assert t0 + 60 not in series.timestamps
    assert len(series) == 10
    assert np.all(series.values == 1.0)


async def test_a_range_over_no_data_is_empty(prom_history, make_source):
    source = make_source(prom_history.url)
    series = await source.range('load_gauge{namespace="nowhere"}', prom_history.t0, prom_history.t0 + 600, 60)
    assert len(series) == 0 and series.values.dtype == float


# --------------------------------------------------------------------------- missing data is None


@pytest.mark.parametrize(
    "query",
    [
        pytest.param('load_gauge{namespace="nowhere"}', id="empty-result"),
        pytest.param("0/0", id="nan-scalar"),
        pytest.param("vector(0) / 0", id="nan-vector"),
        pytest.param("1/0", id="plus-inf"),
        pytest.param("-1/0", id="minus-inf"),
    ],
)
async def test_missing_values_come_back_as_none(prom_history, make_source, query):
    source = make_source(prom_history.url)
    assert await source.instant(query, prom_history.t0 + 600) is None


async def test_a_series_without_a_sample_in_the_lookback_window_is_missing(prom_history, make_source):
    source = make_source(prom_history.url)
    query, t_end = 'load_gauge{namespace="shop",workload="web"}', prom_history.t_end
    assert await source.instant(query, t_end + 60) == Sample(value=249.0, at=t_end + 60)  # 10 + 239, 1 min old
    assert await source.instant(query, t_end + 360) is None  # 6 min old, lookback delta is 5 min


# --------------------------------------------------------------------------- errors


async def test_two_series_are_an_error_that_names_the_query_and_the_count(prom_history, make_source):
    source = make_source(prom_history.url)
    query = 'rate(http_requests_total{namespace="shop"}[1m])'
    with pytest.raises(prometheus.MetricsUnavailable, match=r"returned 2 series") as err:
        await source.instant(query, prom_history.t0 + 600)
    assert query in str(err.value) and "sum(" in str(err.value)
    assert not err.value.retryable
    summed = await source.instant(f"sum({query})", prom_history.t0 + 600)
    assert summed is not None and summed.value == pytest.approx(8.0)


async def test_a_range_vector_as_the_load_query_is_an_error_that_says_what_to_write(prom_history, make_source):
    source = make_source(prom_history.url)
    query = 'sum(rate(http_requests_total{namespace="shop"}[1m]))[5m:1m]'
    with pytest.raises(prometheus.MetricsUnavailable, match=r"returned a range vector; the load query must return one instant value") as err:
        await source.instant(query, prom_history.t0 + 600)
    assert query in str(err.value) and not err.value.retryable


async def test_a_range_that_sees_two_series_across_its_chunks_is_an_error(prom_history, make_source):
    source = make_source(prom_history.url, max_points_per_request=6)
    t0 = prom_history.t0
    with pytest.raises(prometheus.MetricsUnavailable, match=r"returned 2 series"):
        await source.range("shift_gauge", t0, t0 + 3600, 60)


async def test_a_bad_query_fails_at_once_without_retries(prom_history, make_source):
    sleep = RecordingSleep()
    source = make_source(prom_history.url, sleep=sleep)
    with pytest.raises(prometheus.MetricsUnavailable, match=r"HTTP 400.*parse error") as err:
        await source.instant("sum(", prom_history.t0)
    assert err.value.attempts == 1 and not err.value.retryable
    assert sleep.delays == []


async def test_a_stopped_server_is_unavailable_after_bounded_retries_and_recovers_when_back(make_source):
    t = 1_700_000_000.0 + 15.0 * np.arange(40)
    server = promharness.PrometheusServer(scrape_interval_seconds=1.0)
    try:
        server.backfill([promharness.gauge_series("up_gauge", {}, t, np.arange(40.0))])
        await asyncio.to_thread(server.start)
        sleep, events = RecordingSleep(), []
        source = make_source(server.url, retries=2, backoff_initial_seconds=0.5, sleep=sleep, on_request=events.append)
        assert await source.instant("up_gauge", t[5]) == Sample(5.0, t[5])

        await asyncio.to_thread(server.stop)
        with pytest.raises(prometheus.MetricsUnavailable, match=r"after 3 attempts: connection failed") as err:
            await source.instant("up_gauge", t[5])
        assert err.value.attempts == 3 and err.value.retryable
        assert sleep.delays == [0.5, 1.0]  # exponential, one wait between attempts
        assert [e.error for e in events[1:]] == ["connection"] * 3

        await asyncio.to_thread(server.start)  # same port, same data directory
        assert await source.instant("up_gauge", t[6]) == Sample(6.0, t[6])
    finally:
        server.close()


async def test_the_backoff_is_capped(make_source):
    sleep = RecordingSleep()
    source = make_source(f"http://127.0.0.1:{promharness.free_port()}", retries=5, backoff_initial_seconds=1.0,
                         backoff_max_seconds=3.0, sleep=sleep)
    with pytest.raises(prometheus.MetricsUnavailable):
        await source.instant("up", 0.0)
    assert sleep.delays == [1.0, 2.0, 3.0, 3.0, 3.0]


async def test_a_request_that_outlasts_the_timeout_is_unavailable(make_source):
    async with FakePrometheus() as fake:
        fake.hang = True
        events: list[prometheus.QueryEvent] = []
        source = make_source(fake.url, timeout_seconds=0.3, retries=1, on_request=events.append)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(prometheus.MetricsUnavailable, match=r"after 2 attempts: timed out after 0.3 s"):
            await source.instant("up", 1_700_000_000.0)
        assert loop.time() - began < 2.0  # 2 x 0.3 s, the backoff sleep is recorded, not slept
        assert [e.error for e in events] == ["timeout", "timeout"]


async def test_http_5xx_is_retried_and_reported_with_its_status(make_source):
    async with FakePrometheus() as fake:
        fake.status = 503
        events: list[prometheus.QueryEvent] = []
        source = make_source(fake.url, retries=1, on_request=events.append)
        with pytest.raises(prometheus.MetricsUnavailable, match=r"HTTP 503"):
            await source.instant("up", 1_700_000_000.0)
        assert [(e.error, e.status) for e in events] == [("http", 503), ("http", 503)]
        assert len(fake.requests) == 2


async def test_a_response_that_is_not_the_prometheus_api_fails_at_once(make_source):
    sleep = RecordingSleep()
    async with FakePrometheus() as fake:
        fake.html = True  # a proxy's login page, a wrong URL
        source = make_source(fake.url, sleep=sleep)
        with pytest.raises(prometheus.MetricsUnavailable, match=r"not a Prometheus API response"):
            await source.instant("up", 1_700_000_000.0)
    assert len(fake.requests) == 1 and sleep.delays == []


async def test_a_failing_telemetry_hook_does_not_break_the_query(make_source):
    async with FakePrometheus() as fake:
        def broken(event: prometheus.QueryEvent) -> None:
            raise RuntimeError("hook")

        source = make_source(fake.url, on_request=broken)
        assert await source.instant("up", 1_700_000_000.0) == Sample(1.0, 1_700_000_000.0)


# --------------------------------------------------------------------------- credentials


async def test_the_bearer_token_file_is_read_on_every_request_so_rotation_takes_effect(make_source, tmp_path):
    token = tmp_path / "token"
    token.write_text("first-token\n")
    async with FakePrometheus() as fake:
        source = make_source(fake.url, bearer_token_file=token, headers={"X-Scope-OrgID": "tenant-1"})
        await source.instant("up", 1_700_000_000.0)
        token.write_text("second-token\n")  # the kubelet swaps projected tokens in place
        await source.instant("up", 1_700_000_000.0)
    assert [r["Authorization"] for r in fake.requests] == ["Bearer first-token", "Bearer second-token"]
    assert fake.requests[0]["X-Scope-OrgID"] == "tenant-1"


async def test_a_missing_token_file_is_unavailable_without_retries(make_source, tmp_path):
    sleep = RecordingSleep()
    async with FakePrometheus() as fake:
        source = make_source(fake.url, bearer_token_file=tmp_path / "absent", sleep=sleep)
        with pytest.raises(prometheus.MetricsUnavailable, match=r"cannot read credentials.*absent"):
            await source.instant("up", 1_700_000_000.0)
    assert fake.requests == [] and sleep.delays == []


async def test_basic_auth_is_sent(make_source):
    async with FakePrometheus() as fake:
        source = make_source(fake.url, basic_auth=("scaleahead", "s3cr:t"))
        await source.instant("up", 1_700_000_000.0)
    assert fake.requests[0]["Authorization"] == "Basic " + base64.b64encode(b"scaleahead:s3cr:t").decode()


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"bearer_token_file": "/t", "basic_auth": ("u", "p")}, id="two-kinds-of-auth"),
        pytest.param({"ca_file": "/ca.pem", "insecure_skip_verify": True}, id="ca-and-insecure"),
        pytest.param({"client_key_file": "/k.pem"}, id="key-without-cert"),
        pytest.param({"retries": -1}, id="negative-retries"),
    ],
)
def test_contradictory_options_are_rejected_when_built(options):
    with pytest.raises(ValueError):
        prometheus.PrometheusMetricsSource("http://127.0.0.1:9", **options)


# --------------------------------------------------------------------------- templating and injection

SELECTOR = 'odd_gauge{namespace="$namespace",pod="$name"}'
REGEX = 'sum(odd_gauge{namespace="$namespace",pod=~"$name"})'


@pytest.mark.parametrize(
    ("template", "name", "escaped", "naive"),
    [
        # template, workload name, expected with render_query, what plain substitution would give
        pytest.param(SELECTOR, 'foo"} or vector(1) #', None, 1.0, id="quote-breakout-injects-vector"),
        pytest.param(REGEX, "a.*", 3.0, 7.0, id="regex-wildcard"),  # only pod "a.*"; naive: a.* + abc = 3 + 4
        pytest.param(REGEX, ".*", None, 7.0, id="match-everything"),  # naive: a.* + abc = 3 + 4 (RE2's . skips \n)
        pytest.param(SELECTOR, "foo\\", None, "error", id="trailing-backslash"),
        pytest.param(SELECTOR, 'we"b\\1\nx', 7.0, "error", id="odd-name-found-exactly"),
        pytest.param(REGEX, 'we"b\\1\nx', 7.0, "error", id="odd-name-found-exactly-by-regex"),
    ],
)
async def test_names_cannot_inject_promql(prom_history, make_source, template, name, escaped, naive):
    source = make_source(prom_history.url)
    at = prom_history.t0 + 600
    got = await source.instant(prometheus.render_query(template, namespace="shop", name=name), at)
    assert (got.value if got else None) == escaped

    # The control: the same template filled without escaping really is exploitable.
    unescaped = string.Template(template).substitute(namespace="shop", name=name)
    if naive == "error":
        with pytest.raises(prometheus.MetricsUnavailable):
            await source.instant(unescaped, at)
    else:
        sample = await source.instant(unescaped, at)
        assert sample is not None and sample.value == naive


@pytest.mark.parametrize(
    ("value", "string_escaped", "regex_escaped"),
    [
        pytest.param("web", "web", "web", id="plain"),
        pytest.param('a"b', 'a\\"b', 'a\\"b', id="quote"),
        pytest.param("a\\b", "a\\\\b", "a\\\\\\\\b", id="backslash"),  # regex \\ then string-escaped
        pytest.param("a\nb", "a\\nb", "a\\nb", id="newline"),
        pytest.param("a.*", "a.*", "a\\\\.\\\\*", id="regex-meta"),
        pytest.param("a\tb", "a\\u0009b", "a\\u0009b", id="control-character"),
    ],
)
def test_render_query_escapes_for_strings_and_regexes(value, string_escaped, regex_escaped):
    assert prometheus.render_query('x{pod="$name"}', namespace="ns", name=value) == f'x{{pod="{string_escaped}"}}'
    assert prometheus.render_query('x{pod=~"$name"}', namespace="ns", name=value) == f'x{{pod=~"{regex_escaped}"}}'
    assert prometheus.render_query('x{pod !~ "$name"}', namespace="ns", name=value) == f'x{{pod !~ "{regex_escaped}"}}'


def test_render_query_fills_both_placeholders_and_keeps_the_rest():
    got = prometheus.render_query(
        "sum(rate(http_requests_total{namespace=\"$namespace\",pod=~\"${name}-[a-z0-9]+$$\"}[1m])) # 'per $name'",
        namespace="shop", name="web",
    )
    assert got == "sum(rate(http_requests_total{namespace=\"shop\",pod=~\"web-[a-z0-9]+$\"}[1m])) # 'per $name'"


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("up{pod=$name}", id="unquoted"),
        pytest.param("up{pod='$name'}", id="single-quoted"),
        pytest.param('up{pod="$pod"}', id="unknown-placeholder"),
        pytest.param('up{pod="$"}', id="stray-dollar"),
        pytest.param('up{pod="$name}', id="unterminated"),
    ],
)
def test_render_query_rejects_templates_it_cannot_make_safe(template):
    with pytest.raises(ValueError):
        prometheus.render_query(template, namespace="shop", name="web")


def test_series_is_plain_data():
    series = prometheus.Series(timestamps=np.array([1.0, 2.0]), values=np.array([3.0, math.pi]))
    assert len(series) == 2
    with pytest.raises(AttributeError):
        series.values = np.array([])  # type: ignore[misc]
