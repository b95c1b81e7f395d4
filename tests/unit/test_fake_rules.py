"""The fake RealtimeKit's pure rules: lifecycle plans, webhook faults, loopback URLs."""

from __future__ import annotations

import pytest

from worker.dev.fake_lifecycle import Lifecycle, Livestream
from worker.dev.fake_webhooks import (
    FaultRates,
    draw_faults,
    loopback_url,
    parse_webhook_faults,
    parse_webhooks,
)


@pytest.mark.parametrize(
    ("live_after", "errored_after", "steps"),
    [
        (None, None, ()),
        (2.0, None, ((2.0, "LIVE"),)),
        (None, 3.0, ((3.0, "ERRORED"),)),
        (2.0, 3.0, ((2.0, "LIVE"), (3.0, "ERRORED"))),
        (3.0, 2.0, ((2.0, "ERRORED"),)),  # erred first: never LIVE
        (2.0, 2.0, ((2.0, "ERRORED"),)),
        (0.0, None, ((0.0, "LIVE"),)),
    ],
)
def test_lifecycle_steps(live_after, errored_after, steps):
    assert Lifecycle(live_after, errored_after).steps() == steps


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, Lifecycle(1.0, None)),
        ({"live_after": None}, Lifecycle(None, None)),
        ({"errored_after": 2}, Lifecycle(1.0, 2.0)),
        ({"live_after": 0, "errored_after": 0.5}, Lifecycle(0.0, 0.5)),
    ],
)
def test_lifecycle_merged_replaces_only_the_keys_given(spec, expected):
    assert Lifecycle(1.0).merged(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        {"live_after": -1},
        {"live_after": "1"},
        {"live_after": True},
        {"live_after": float("nan")},
        {"errored_after": float("inf")},
        {"dead_after": 1},
        None,
        [],
    ],
)
def test_lifecycle_merged_refuses_bad_specs(spec):
    with pytest.raises(ValueError):
        Lifecycle().merged(spec)


def test_a_livestream_advances_in_order_and_stops_for_good():
    stream = Livestream("id", "m", None, "key", 100.0, Lifecycle(2.0, 5.0).steps())
    assert stream.advance(101.0) == []
    assert stream.advance(106.0) == [("LIVE", 102.0), ("ERRORED", 105.0)]
    assert (stream.status, stream.updated, stream.next_due()) == ("ERRORED", 105.0, None)
    other = Livestream("id2", "m", None, "key", 100.0, Lifecycle(2.0).steps())
    other.end(101.0, "stop")
    assert other.advance(200.0) == [] and other.status == "IDLE" and other.updated == 101.0


@pytest.mark.parametrize(
    ("draws", "faults"),
    [
        ([0.9, 0.9, 0.9, 0.9], set()),
        ([0.0, 0.9, 0.9, 0.9], {"drop"}),
        ([0.9, 0.05, 0.9, 0.09], {"duplicate", "bad_signature"}),
        ([0.1, 0.1, 0.3, 0.1], {"duplicate", "late"}),  # a draw equal to its rate misses
    ],
)
def test_draw_faults(draws, faults):
    rates = FaultRates(drop=0.1, duplicate=0.2, late=0.4, bad_signature=0.1)
    assert draw_faults(rates, draws) == faults


@pytest.mark.parametrize(
    "spec",
    [
        {"drop": 1.5},
        {"drop": -0.1},
        {"late_seconds": "2"},
        {"seed": 1.5},
        {"lost": 0.1},
        {"script": [{"faults": ["vanish"]}]},
        {"script": [{"faults": "drop"}]},
        {"script": {}},
        [],
    ],
)
def test_parse_webhook_faults_refuses_bad_specs(spec):
    with pytest.raises(ValueError):
        parse_webhook_faults(spec)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"url": "http://127.0.0.1:1/", "retries": -1},
        {"url": "http://127.0.0.1:1/", "retries": 1.5},
        {"url": "http://127.0.0.1:1/", "timeout": 0},
        {"url": "http://127.0.0.1:1/", "backoff": "1"},
        {"url": "http://127.0.0.1:1/", "secret": "x"},
    ],
)
def test_parse_webhooks_refuses_bad_specs(spec):
    with pytest.raises(ValueError):
        parse_webhooks(spec)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook"),
        ("http://localhost:9000", "http://127.0.0.1:9000/"),
        ("http://[::1]/a?b=c", "http://[::1]/a?b=c"),
        ("http://example.com/", None),
        ("http://10.0.0.1/", None),
        ("https://127.0.0.1/", None),
        ("http://u:p@127.0.0.1/", None),
        ("", None),
    ],
)
def test_loopback_url(url, kept):
    if kept is None:
        with pytest.raises(ValueError, match="loopback"):
            loopback_url(url)
    else:
        assert loopback_url(url) == kept
