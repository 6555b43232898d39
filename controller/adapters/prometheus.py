"""The Prometheus adapter: PromQL instant and range queries -> ``Sample`` / ``Series`` (port ``MetricsSource``).

Built on ``prometheus-api-client`` (``PrometheusConnect``), which is synchronous
(``requests``). Every call runs in this adapter's own small thread pool, never on
the event loop, and is bounded by ``asyncio.wait_for``; the pool is separate from
the default executor so that slow queries cannot starve model fits, and its
size bounds how many queries hit Prometheus at once.

One meaning for each kind of missing data (STYLE.md section 3, as KEDA's
``IgnoreNullValues``, kedacore/keda#3065, settles it for its scaler):

- **Missing -> ``None``** (instant) or **no point** (range): an empty result, a
  NaN, a +Inf or a -Inf value, and a stale series. Staleness is Prometheus's
  own: a series with no sample within the server's lookback delta
  (``--query.lookback-delta``, 5 m by default), or one whose target
  disappeared (staleness marker), is absent from the result, so it comes back
  empty; a ``rate(x[1m])`` additionally needs two samples inside its own
  window. The adapter cannot see raw sample ages through functions (Prometheus
  stamps results with the evaluation time), so a tighter bound belongs in the
  query's range window. The caller decides what missing means
  (``on_missing: hold | zero | fail`` in the settings); the adapter never
  returns a sentinel value.
- **Unavailable -> ``MetricsUnavailable``**: a connection refused, a timeout
  or an HTTP 5xx/408/429 after the bounded retries; at once, without retrying,
  a request Prometheus rejects (HTTP 4xx: a bad query, a limit exceeded), a
  response that is not the Prometheus API, TLS failures, an unreadable token
  file, and a query that returns more than one series. A template must reduce
  to one series (``sum(...)``) itself: silently picking one would make the
  replica count depend on the order of a JSON array.

PromQL templates use ``$namespace`` and ``$name`` (``string.Template``) and are
filled by :func:`render_query`, which only allows placeholders inside
double-quoted strings and escapes the values there, so a workload name cannot
change the structure of a query.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import requests
import requests.adapters
import requests.auth
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controller.domain import Sample, Series

log = logging.getLogger(__name__)

Endpoint = Literal["query", "query_range"]




class MetricsUnavailable(RuntimeError):
    """Prometheus could not answer the query (after the retries, where retrying can help).

    Attributes:
        query: the PromQL query.
        attempts: how many HTTP requests were made.
        retryable: whether a later attempt may succeed (outage, timeout) or the
            request itself is wrong (bad query, several series, bad credentials file).
    """

    def __init__(self, message: str, *, query: str, attempts: int = 1, retryable: bool = False) -> None:
        super().__init__(message)
        self.query = query
        self.attempts = attempts
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class QueryEvent:
    """One HTTP request to Prometheus, passed to the ``on_request`` hook (for latency and error metrics).

    Attributes:
        endpoint: ``"query"`` or ``"query_range"``.
        query: the PromQL query.
        attempt: 1 for the first try, 2 for the first retry, ...
        duration_seconds: wall time of the request (monotonic clock).
        error: ``None`` on success, else one of ``"timeout"``, ``"connection"``,
            ``"tls"``, ``"http"``, ``"response"``, ``"credentials"``.
        status: the HTTP status when there was one.
    """

    endpoint: Endpoint
    query: str
    attempt: int
    duration_seconds: float
    error: str | None = None
    status: int | None = None


# --------------------------------------------------------------------------- templating

_TEMPLATE_KEYS = ("namespace", "name")
# Go's regexp.QuoteMeta set: the characters RE2 treats specially outside classes.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def escape_string(value: str) -> str:
    """Escape ``value`` for the inside of a PromQL double-quoted string.

    Backslash, double quote and newline get their Go escapes; other control
    characters become ``\\uXXXX``. The PromQL lexer accepts exactly these.
    """
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def escape_regex(value: str) -> str:
    """Escape ``value`` so that an RE2 regex (``=~``, ``!~``) matches it literally (Go's ``regexp.QuoteMeta``)."""
    return "".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in value)


def _string_end(template: str, start: int) -> int:
    # Index just after the literal opened at ``start``; backtick strings have no escapes.
    quote = template[start]
    i = start + 1
    while i < len(template):
        ch = template[i]
        if ch == "\\" and quote != "`":
            i += 2
            continue
        if ch == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string literal at offset {start} in PromQL template {template!r}")


def _after_regex_operator(template: str, quote_at: int) -> bool:
    head = template[:quote_at].rstrip()
    return head.endswith("=~") or head.endswith("!~")


def render_query(template: str, *, namespace: str, name: str) -> str:
    """Fill ``$namespace`` and ``$name`` in a PromQL template, escaped so that they stay label values.

    Placeholders are allowed only inside double-quoted strings. There the value
    is escaped for the string (backslash, double quote, newline, control
    characters); after a regex operator (``=~`` or ``!~``) it is first
    regex-escaped, so ``a.*`` matches only the name ``a.*``. Write ``$$`` for a
    literal ``$`` (a regex anchor, for example).

    Example:
        ``render_query('sum(rate(http_requests_total{namespace="$namespace",pod=~"$name-.*"}[1m]))',
        namespace="shop", name="web")``

    Args:
        template: PromQL with ``$namespace`` / ``$name`` (or ``${name}``) placeholders.
        namespace: the workload's namespace.
        name: the workload's name.

    Returns:
        The query text.

    Raises:
        ValueError: a placeholder outside a double-quoted string, an unknown
            placeholder, a stray ``$``, or an unterminated string literal.
    """
    values = {"namespace": namespace, "name": name}
    for key, value in values.items():
        if not isinstance(value, str):
            raise TypeError(f"{key} must be a str, got {type(value).__name__}")
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch in "\"'`":
            end = _string_end(template, i)
            literal = template[i:end]
            if ch == '"':
                regex = _after_regex_operator(template, i)
                escaped = {k: escape_string(escape_regex(v) if regex else v) for k, v in values.items()}
                out.append('"' + _substitute(literal[1:-1], escaped, template) + '"')
            elif "$" in literal:
                raise ValueError(
                    f"placeholders are only allowed in double-quoted strings, not in {literal} of {template!r}"
                )
            else:
                out.append(literal)
            i = end
        elif ch == "#":
            # A comment runs to the end of the line; nothing in it is evaluated.
            end = template.find("\n", i)
            end = len(template) if end < 0 else end
            out.append(template[i:end])
            i = end
        else:
            end = i
            while end < len(template) and template[end] not in "\"'`#":
                end += 1
            segment = template[i:end]
            if "$" in segment:
                raise ValueError(
                    f"a placeholder outside a double-quoted string cannot be escaped: {segment.strip()!r} "
                    f"in PromQL template {template!r}; write it as a label value, e.g. pod=\"$name\""
                )
            out.append(segment)
            i = end
    return "".join(out)


def _substitute(body: str, escaped: Mapping[str, str], template: str) -> str:
    tmpl = string.Template(body)
    unknown = [k for k in tmpl.get_identifiers() if k not in _TEMPLATE_KEYS]
    if unknown or not tmpl.is_valid():
        raise ValueError(
            f"PromQL template {template!r}: unknown placeholder(s) {unknown} or a stray '$' "
            f"(placeholders: {', '.join('$' + k for k in _TEMPLATE_KEYS)}; write $$ for a literal $)"
        )
    return tmpl.substitute(escaped)


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPStatusError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


def _raise_for_status(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    # A response hook, so the status code survives as a number (PrometheusConnect only
    # keeps it inside a message) and the Prometheus error text is kept short.
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = f"{body.get('errorType', '')}: {body.get('error', '')}"
        except ValueError:
            detail = response.text[:200]
        raise _HTTPStatusError(response.status_code, detail)


class _BearerTokenFile(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` read from a file on every request, as projected tokens rotate."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.path.read_text().strip()
        if not token:
            raise OSError(f"bearer token file {self.path} is empty")
        request.headers["Authorization"] = f"Bearer {token}"
        return request


def _is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


# --------------------------------------------------------------------------- the adapter


class PrometheusMetricsSource:
    """``MetricsSource`` on a Prometheus HTTP API (``/api/v1/query``, ``/api/v1/query_range``).

    Args:
        url: base URL, e.g. ``http://prometheus.monitoring:9090`` (no ``/api/v1``).
        bearer_token_file: file holding a bearer token, re-read on every request.
        basic_auth: ``(username, password)``; exclusive with ``bearer_token_file``.
        headers: extra HTTP headers on every request (e.g. ``X-Scope-OrgID``).
        ca_file: PEM bundle to verify the server's certificate with.
        insecure_skip_verify: do not verify the server's certificate; exclusive with ``ca_file``.
        client_cert_file: PEM client certificate for mutual TLS.
        client_key_file: its key, when not in ``client_cert_file``.
        timeout_seconds: bound on one HTTP request (client side, and sent to
            Prometheus as the query's ``timeout`` so it stops evaluating too).
        retries: retries after the first attempt, for outages and timeouts only.
        backoff_initial_seconds: wait before the first retry; doubled per retry.
        backoff_max_seconds: cap on one wait.
        max_points_per_request: range queries with more points per series are
            split into consecutive requests (Prometheus refuses more than 11,000).
        max_concurrency: requests in flight at once (the thread pool's size).
        sleep: the backoff sleep, e.g. ``clock.sleep`` (injectable for tests).
        on_request: called after every HTTP request with a :class:`QueryEvent`;
            exceptions it raises are logged and ignored.

    The worst-case duration of one call is ``(retries + 1) * timeout_seconds``
    plus the backoff waits (defaults: 3 * 5 + 0.5 + 1 = 16.5 s).
    """

    def __init__(
        self,
        url: str,
        *,
        bearer_token_file: str | Path | None = None,
        basic_auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ca_file: str | Path | None = None,
        insecure_skip_verify: bool = False,
        client_cert_file: str | Path | None = None,
        client_key_file: str | Path | None = None,
        timeout_seconds: float = 5.0,
        retries: int = 2,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 4.0,
        max_points_per_request: int = 10_000,
        max_concurrency: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_request: Callable[[QueryEvent], None] | None = None,
    ) -> None:
        # Reject contradictory options here, where the settings are read, not on the first tick.
        if bearer_token_file is not None and basic_auth is not None:
            raise ValueError("bearer_token_file and basic_auth are exclusive")
        if ca_file is not None and insecure_skip_verify:
            raise ValueError("ca_file and insecure_skip_verify are exclusive")
        if client_key_file is not None and client_cert_file is None:
            raise ValueError("client_key_file needs client_cert_file")
        if timeout_seconds <= 0 or retries < 0 or backoff_initial_seconds < 0 or backoff_max_seconds < 0:
            raise ValueError("timeout_seconds must be > 0; retries and backoff seconds must be >= 0")
        if max_points_per_request < 2 or max_concurrency < 1:
            raise ValueError("max_points_per_request must be >= 2 and max_concurrency >= 1")
        self.url = url.rstrip("/")
        self.timeout_seconds = float(timeout_seconds)
        self.retries = int(retries)
        self.backoff_initial_seconds = float(backoff_initial_seconds)
        self.backoff_max_seconds = float(backoff_max_seconds)
        self.max_points_per_request = int(max_points_per_request)
        self._sleep = sleep
        self._on_request = on_request

        session = requests.Session()
        if insecure_skip_verify:
            session.verify = False
        elif ca_file is not None:
            session.verify = str(ca_file)
        if client_cert_file is not None:
            session.cert = (str(client_cert_file), str(client_key_file)) if client_key_file else str(client_cert_file)
        session.hooks["response"].append(_raise_for_status)
        auth: requests.auth.AuthBase | tuple[str, str] | None = None
        if bearer_token_file is not None:
            auth = _BearerTokenFile(Path(bearer_token_file))
        elif basic_auth is not None:
            auth = tuple(basic_auth)  # type: ignore[assignment]
        self._client = PrometheusConnect(
            url=self.url,
            headers=dict(headers or {}),
            retry=Retry(total=0),
            auth=auth,
            session=session,
            timeout=self.timeout_seconds,  # type: ignore[arg-type]  # requests takes a float
        )
        # Retries are ours (bounded, with an injectable sleep); the connection pool must
        # hold as many connections as there are threads. Mounted after PrometheusConnect's
        # own adapter on the same prefix, so this one wins.
        session.mount(self.url, requests.adapters.HTTPAdapter(max_retries=0, pool_maxsize=max_concurrency))
        self._session = session
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrency,
                                                               thread_name_prefix="prometheus")

    # ---- public API (MetricsSource)

    async def instant(self, query: str, at: float) -> Sample | None:
        """Evaluate ``query`` at ``at`` (Unix seconds).

        Returns:
            The value with the timestamp Prometheus evaluated it at, or ``None``
            when the result is empty (including a stale series), NaN or infinite.

        Raises:
            MetricsUnavailable: Prometheus is unreachable, times out or fails
                after the retries; it rejects the query; or the query returns
                more than one series.
        """
        params = {"time": _fmt(at), "timeout": _fmt(self.timeout_seconds)}
        result = await self._call("query", query, lambda: self._client.custom_query(query, params=params))
        return _parse_instant(query, result)

    async def range(self, query: str, start: float, end: float, step_seconds: float) -> Series:
        """Evaluate ``query`` at ``start, start + step, ..., <= end`` (Unix seconds).

        Long ranges are fetched in consecutive requests of at most
        ``max_points_per_request`` points each.

        Returns:
            The points that have a finite value; an empty ``Series`` when none does.

        Raises:
            ValueError: ``step_seconds <= 0`` or ``end < start``.
            MetricsUnavailable: as :meth:`instant`; several series over the whole
                range count as several series even when each request saw one.
        """
        if not step_seconds > 0 or end < start:
            raise ValueError(f"need step_seconds > 0 and end >= start, got step={step_seconds}, [{start}, {end}]")
        label_sets: set[frozenset[tuple[str, str]]] = set()
        times: list[float] = []
        values: list[float] = []
        chunk_span = (self.max_points_per_request - 1) * step_seconds
        chunk_start = float(start)
        # One request per chunk, in order; each continues one step after the last.
        while chunk_start <= end:
            chunk_end = min(float(end), chunk_start + chunk_span)
            params = {"start": _fmt(chunk_start), "end": _fmt(chunk_end), "step": _fmt(step_seconds),
                      "timeout": _fmt(self.timeout_seconds)}
            result = await self._call(
                "query_range", query,
                lambda p=params: self._client.custom_query_range(  # type: ignore[misc]
                    query, start_time=_dt(float(p["start"])), end_time=_dt(float(p["end"])), step=p["step"], params=p),
            )
            for series in _as_list(query, result):
                label_sets.add(frozenset(series.get("metric", {}).items()))
                for ts, raw in series["values"]:
                    v = float(raw)
                    if math.isfinite(v):
                        times.append(float(ts))
                        values.append(v)
            if len(label_sets) > 1:
                raise _several_series(query, len(label_sets), label_sets)
            chunk_start = chunk_end + step_seconds
        ts_arr = np.asarray(times, dtype=float)
        val_arr = np.asarray(values, dtype=float)
        if len(ts_arr) > 1 and np.any(np.diff(ts_arr) <= 0):
            order = np.argsort(ts_arr, kind="stable")
            ts_arr, idx = np.unique(ts_arr[order], return_index=True)
            val_arr = val_arr[order][idx]
        return Series(timestamps=ts_arr, values=val_arr)

    async def aclose(self) -> None:
        """Release the thread pool and the HTTP connections."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Blocking form of :meth:`aclose`."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._session.close()

    async def __aenter__(self) -> PrometheusMetricsSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- retries

    async def _call(self, endpoint: Endpoint, query: str, request: Callable[[], Any]) -> Any:
        """Run ``request`` in the pool with a timeout; retry outages with exponential backoff."""
        loop = asyncio.get_running_loop()
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            began = time.monotonic()
            status: int | None = None
            try:
                result = await asyncio.wait_for(loop.run_in_executor(self._executor, request), self.timeout_seconds)
            except (TimeoutError, requests.exceptions.Timeout) as exc:
                kind, retryable = "timeout", True
                detail = f"timed out after {self.timeout_seconds} s ({exc or 'no answer'})"
            except requests.exceptions.SSLError as exc:
                kind, retryable, detail = "tls", False, f"TLS error: {exc}"
            except requests.exceptions.ConnectionError as exc:
                kind, retryable, detail = "connection", True, f"connection failed: {exc}"
            except _HTTPStatusError as exc:
                status = exc.status
                kind, retryable, detail = "http", _is_retryable_status(exc.status), str(exc)
            except (PrometheusApiClientException, requests.exceptions.RequestException, ValueError, KeyError,
                    TypeError) as exc:
                kind, retryable, detail = "response", False, f"not a Prometheus API response: {exc!r}"
            except OSError as exc:
                kind, retryable, detail = "credentials", False, f"cannot read credentials: {exc}"
            else:
                self._report(QueryEvent(endpoint, query, attempt, time.monotonic() - began, None, 200))
                return result
            self._report(QueryEvent(endpoint, query, attempt, time.monotonic() - began, kind, status))
            if not retryable or attempt == attempts:
                tried = f" after {attempt} attempt{'s' if attempt > 1 else ''}" if retryable else ""
                raise MetricsUnavailable(
                    f"Prometheus {self.url} {endpoint} {query!r}{tried}: {detail}",
                    query=query, attempts=attempt, retryable=retryable,
                )
            delay = min(self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** (attempt - 1))
            log.warning("prometheus %s failed (attempt %d of %d, retrying in %.2f s): %s",
                        endpoint, attempt, attempts, delay, detail)
            await self._sleep(delay)
        raise AssertionError("unreachable")

    def _report(self, event: QueryEvent) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(event)
        except Exception:  # telemetry must never break a query
            log.exception("on_request hook failed")


# --------------------------------------------------------------------------- parsing


def _fmt(x: float) -> str:
    return repr(float(x))


def _dt(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


def _as_list(query: str, result: Any) -> list[dict[str, Any]]:
    if not isinstance(result, list) or any(not isinstance(r, dict) for r in result):
        raise MetricsUnavailable(f"query {query!r}: unexpected result {str(result)[:200]}", query=query)
    return result


def _several_series(query: str, count: int, label_sets: Any) -> MetricsUnavailable:
    shown = ", ".join("{" + ",".join(f'{k}="{v}"' for k, v in sorted(s)) + "}" for s in list(label_sets)[:3])
    return MetricsUnavailable(
        f"query {query!r} returned {count} series ({shown}{', ...' if count > 3 else ''}); "
        f"it must return one: aggregate it in the query, e.g. sum(...)",
        query=query,
    )


def _parse_instant(query: str, result: Any) -> Sample | None:
    # A scalar (``0/0``, ``time()``) comes back as ``[t, "v"]``; a vector as a list of
    # ``{"metric": ..., "value": [t, "v"]}``.
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        ts, raw = result
    else:
        series = _as_list(query, result)
        if not series:
            return None
        if len(series) > 1:
            raise _several_series(query, len(series), [frozenset(s.get("metric", {}).items()) for s in series])
        if "value" not in series[0]:
            shape = "a range vector" if "values" in series[0] else "an unexpected result"
            raise MetricsUnavailable(
                f"query {query!r} returned {shape}; the load query must return one instant value, "
                f"e.g. sum(rate(metric[1m])) rather than metric[1m]",
                query=query,
            )
        ts, raw = series[0]["value"]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise MetricsUnavailable(f"query {query!r} returned a non-number {raw!r}", query=query) from None
    if not math.isfinite(value):
        return None
    return Sample(value=value, at=float(ts))


__all__ = [
    "MetricsUnavailable",
    "PrometheusMetricsSource",
    "QueryEvent",
    "Series",
    "escape_regex",
    "escape_string",
    "render_query",
]
