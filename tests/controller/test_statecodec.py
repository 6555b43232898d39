"""The state annotation codec: round trip, trimming, and tolerance of anything unreadable."""

from __future__ import annotations

import json

import pytest

from controller import statecodec
from controller.decide.baseline import ReferenceMemory, Tally
from controller.domain import ControllerState, Outcome, Recommendation, ScaleEvent

NOW = 1_700_000_000.0


def state(**overrides) -> ControllerState:
    base = dict(
        recommendations=(Recommendation(10, NOW - 100), Recommendation(8, NOW - 30), Recommendation(8, NOW - 15)),
        scale_up_events=(ScaleEvent(4, NOW - 40),),
        scale_down_events=(ScaleEvent(2, NOW - 20),),
        pending_checks=((NOW + 60, 3.25, 7.5),),
        interval_outcomes=(Outcome.INSIDE, Outcome.ABOVE, Outcome.BELOW, Outcome.INSIDE),
    )
    return ControllerState(**{**base, **overrides})


def encode(s: ControllerState, **kwargs) -> str:
    return statecodec.encode(s, now=NOW, keep_seconds=kwargs.pop("keep", 300), event_keep_seconds=kwargs.pop("events", 60), **kwargs)


def test_a_state_survives_the_round_trip_with_recommendations_compacted():
    decoded = statecodec.decode(encode(state(), startup_samples=((42.0, 1.0),)))
    assert decoded.warning is None
    # 8 at -30 and 8 at -15 answer every window question as 8 at -15 alone
    assert decoded.state.recommendations == (Recommendation(10, NOW - 100), Recommendation(8, NOW - 15))
    assert decoded.state.scale_up_events == (ScaleEvent(4, NOW - 40),)
    assert decoded.state.scale_down_events == (ScaleEvent(2, NOW - 20),)
    assert decoded.state.pending_checks == ((NOW + 60, 3.25, 7.5),)
    assert decoded.state.interval_outcomes == (Outcome.INSIDE, Outcome.ABOVE, Outcome.BELOW, Outcome.INSIDE)
    assert decoded.startup_samples == ((42.0, 1.0),)


def test_outcomes_are_one_character_each_and_older_misses_read_as_above():
    doc = json.loads(encode(state()))
    # A new key: a controller rolled back to the version that wrote "hits" (0 or 1 only) does not
    # find a 2 it would refuse, with the whole state, as malformed.
    assert doc["out"] == "1201" and "hits" not in doc
    # Written before misses above and below were told apart: every miss is a 0, read as a miss
    # above, the side that widens the quantile.
    decoded = statecodec.decode('{"v": 1, "rec": [[3, 1.0]], "hits": "1100"}')
    assert decoded.warning is None
    assert decoded.state.interval_outcomes == (Outcome.INSIDE, Outcome.INSIDE, Outcome.ABOVE, Outcome.ABOVE)
    assert decoded.state.recommendations == (Recommendation(3, 1.0),)
    # the new key wins over an old one
    assert statecodec.decode('{"v": 1, "out": "02", "hits": "11"}').state.interval_outcomes == (Outcome.BELOW, Outcome.ABOVE)


def test_equal_states_encode_to_equal_text_so_a_write_can_be_skipped():
    assert encode(state()) == encode(state())


def test_history_older_than_the_windows_is_trimmed():
    decoded = statecodec.decode(encode(state(), keep=60, events=30, max_hits=2))
    assert decoded.state.recommendations == (Recommendation(8, NOW - 15),)  # 10 at -100 is outside 60 s
    assert decoded.state.scale_up_events == ()  # -40 is outside the 30 s period
    assert decoded.state.scale_down_events == (ScaleEvent(2, NOW - 20),)
    assert decoded.state.interval_outcomes == (Outcome.BELOW, Outcome.INSIDE)


def test_a_long_tick_history_stays_small():
    recs = tuple(Recommendation(5 + i % 3, NOW - 300 + i) for i in range(300))
    text = encode(state(recommendations=recs, interval_outcomes=(Outcome.INSIDE,) * 500))
    assert len(text) < 600
    assert {r.replicas for r in statecodec.decode(text).state.recommendations} == {5, 6, 7}


def test_an_oversized_state_drops_its_optional_parts_first():
    checks = tuple((NOW + i, 1.0, 2.0) for i in range(2000))
    text = encode(state(pending_checks=checks), max_checks=5000)
    assert len(text.encode()) <= statecodec.MAX_BYTES
    decoded = statecodec.decode(text)
    assert decoded.state.pending_checks == ()
    assert decoded.state.recommendations  # what the windows need is kept


@pytest.mark.parametrize(
    "text, warned",
    [
        pytest.param(None, False, id="no-annotation"),
        pytest.param("", False, id="empty"),
        pytest.param("{not json", True, id="garbage"),
        pytest.param("[1, 2]", True, id="not-an-object"),
        pytest.param('{"v": 0, "rec": [[3, 1.0]]}', True, id="old-version"),
        pytest.param('{"v": 99}', True, id="newer-version"),
        pytest.param('{"v": 1, "rec": [["x", 1.0]]}', True, id="bad-number"),
        pytest.param('{"v": 1, "rec": [[3]]}', True, id="bad-shape"),
        pytest.param('{"v": 1, "hits": "10x"}', True, id="bad-hits"),
        pytest.param('{"v": 1, "hits": "102"}', True, id="old-hits-with-an-outcome-above"),
        pytest.param('{"v": 1, "out": "1023"}', True, id="unknown-outcome"),
        pytest.param('{"v": 1, "rec": [[-3, 1.0]]}', True, id="negative-replicas"),
        pytest.param('{"v": 1, "chk": [[Infinity, 1.0, 2.0]]}', True, id="infinite-check"),
    ],
)
def test_an_unreadable_annotation_gives_a_fresh_state_never_an_error(text, warned):
    decoded = statecodec.decode(text)
    assert decoded.state == ControllerState()
    assert (decoded.warning is not None) is warned


def test_the_written_time_is_optional_and_read_back():
    text = encode(state(), include_written_at=True)
    assert json.loads(text)["at"] == NOW
    assert statecodec.decode(text).written_at == NOW


def memory(**overrides) -> ReferenceMemory:
    base = dict(
        quantiles=(0.85, 0.975),
        rung=1,
        days=((Tally(1_036_800.125, 12.5), (Tally(900_000.0, 40.0), Tally(1_000_000.0, 3.0)), 777_600.5),),
        period_end=NOW + 3600.25,
    )
    return ReferenceMemory(**{**base, **overrides})


def test_the_choice_of_quantile_survives_the_round_trip():
    decoded = statecodec.decode(encode(state(), reference=memory()))
    assert decoded.warning is None
    assert decoded.reference == memory()
    assert decoded.state.scale_down_events == (ScaleEvent(2, NOW - 20),)
    assert statecodec.decode(encode(state())).reference is None


def test_a_lean_lowest_rung_survives_the_round_trip_and_older_annotations_read_as_plain():
    lean = memory(quantiles=(0.85, 0.975, 0.5), days=(), lean=True)
    assert statecodec.decode(encode(state(), reference=lean)).reference == lean
    plain = json.loads(encode(state(), reference=memory()))
    assert "lean" not in plain["ref"]  # an annotation written before the lean rung existed has no such key
    assert statecodec.decode(json.dumps(plain)).reference.lean is False


def test_the_balance_against_the_hpa_survives_the_round_trip_and_older_annotations_read_as_even():
    owed = memory(balance=Tally(-86_400.5, 12.25))  # fewer pods than the HPA, more load uncovered
    assert statecodec.decode(encode(state(), reference=owed)).reference == owed
    plain = json.loads(encode(state(), reference=memory()))
    assert "bal" not in plain["ref"]  # an annotation written before the balance existed has no such key
    assert statecodec.decode(json.dumps(plain)).reference.balance == Tally()


def test_the_hpas_pod_seconds_survive_the_round_trip_and_an_older_balance_counts_its_savings_afresh():
    spent = memory(balance=Tally(-86_400.5, 3.5), hpa_pod_seconds=9_000_000.25)
    assert json.loads(encode(state(), reference=spent))["ref"]["hpa"] == 9_000_000.25
    assert statecodec.decode(encode(state(), reference=spent)).reference == spent
    # written with the balance even at 0 (a workload the HPA held at zero pods): the savings are kept
    idle = memory(balance=Tally(3_600.0, 0.0))
    assert statecodec.decode(encode(state(), reference=idle)).reference == idle
    # an annotation written before the reserve existed has a balance and no "hpa": the savings,
    # which had no reserve, are counted afresh from here rather than spent at once; the load owed is kept
    older = json.loads(encode(state(), reference=spent))
    del older["ref"]["hpa"]
    restored = statecodec.decode(json.dumps(older)).reference
    assert (restored.balance, restored.hpa_pod_seconds) == (Tally(0.0, 3.5), 0.0)
    assert restored.days == spent.days and restored.rung == spent.rung
    assert "hpa" not in json.loads(encode(state(), reference=memory()))["ref"]  # nothing counted yet: no key


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param('"x"', id="not-an-object"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0}', id="no-days"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [[[1, -2], [[1, 2]], 3]]}', id="negative-tally"),
        pytest.param('{"q": [0.85], "rung": 0, "end": "never", "days": []}', id="bad-end"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [[[1, 2, 3], [], 3]]}', id="bad-tally-shape"),
        pytest.param('{"q": [0.85, 0.5], "rung": 0, "end": 1.0, "days": [], "lean": "yes"}', id="bad-lean"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [], "bal": [1, "NaN"]}', id="bad-balance"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [], "bal": [1]}', id="bad-balance-shape"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [], "hpa": -5}', id="negative-hpa-pod-seconds"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [], "hpa": "Infinity"}', id="infinite-hpa-pod-seconds"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [], "hpa": [1]}', id="bad-hpa-pod-seconds"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [], "hpa": "5"}', id="hpa-pod-seconds-as-text"),
        pytest.param('{"q": [0.85], "rung": 0, "end": 1.0, "days": [], "hpa": true}', id="hpa-pod-seconds-as-boolean"),
    ],
)
def test_a_malformed_quantile_memory_is_dropped_with_a_warning_and_the_rest_kept(ref):
    text = json.loads(encode(state()))
    text["ref"] = json.loads(ref)
    decoded = statecodec.decode(json.dumps(text))
    assert decoded.reference is None
    assert "quantile memory is malformed" in decoded.warning
    assert decoded.state.scale_down_events == (ScaleEvent(2, NOW - 20),)  # the windows' state is kept


@pytest.mark.parametrize("samples", ["[[Infinity, 1.0]]", "[[NaN, 1.0]]", "[[-5, 1.0]]", "[[30, 0]]", "[[30, 1.0], [40, -1]]"])
def test_invalid_startup_samples_are_dropped_with_a_warning_and_the_rest_kept(samples):
    decoded = statecodec.decode('{"v": 1, "rec": [[3, 100.0]], "startup": ' + samples + "}")

    assert decoded.startup_samples == ()
    assert decoded.warning is not None and "startup samples hold invalid numbers" in decoded.warning
    assert decoded.state.recommendations == (Recommendation(3, 100.0),)
    assert statecodec.decode('{"v": 1, "startup": [[30, 1.0]]}').startup_samples == ((30.0, 1.0),)
