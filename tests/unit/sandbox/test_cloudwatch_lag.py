"""CloudWatch as AWS publishes it: period datapoints released only after the publication lag."""

from __future__ import annotations

import pytest

from bluegreen_provider.sandbox.metrics import PeriodAggregator, Tally, metric_data


def test_datapoints_are_period_aligned_and_released_lag_seconds_after_their_period_ends() -> None:
    agg = PeriodAggregator(period=60, lag=120)
    agg.add("green", "lego-api-moc", Tally(1, 1, 1), at=1005.0)
    agg.add("green", "lego-api-moc", Tally(1, 0, 0), at=1019.0)
    agg.add("green", "lego-api-moc", Tally(1, 0, 0), at=1021.0)  # the next minute
    assert agg.start_of(1005.0) == 960.0 and agg.start_of(1021.0) == 1020.0
    assert agg.due(960 + 60 + 119.9) == []
    (first,) = agg.due(960 + 60 + 120)
    assert first.started == 960.0
    assert first.tallies[("green", "lego-api-moc")] == Tally(2, 1, 1)
    assert agg.due(1020 + 60 + 119) == []  # handed out once
    (second,) = agg.due(1020 + 60 + 120)
    assert second.tallies[("green", "lego-api-moc")] == Tally(1, 0, 0)


def test_scaled_down_periods_work_the_same() -> None:
    agg = PeriodAggregator(period=6, lag=12)
    for i in range(12):
        agg.add("blue", "lego-api-gallery", Tally(1, 0, 0), at=600 + i)
    assert agg.due(600 + 6 + 11.99) == []
    assert [b.started for b in agg.due(600 + 12 + 12)] == [600, 606]


def test_minute_datapoints_are_published_with_standard_resolution() -> None:
    agg = PeriodAggregator(period=60, lag=0)
    agg.add("green", "lego-api-moc", Tally(3, 1, 1), at=125.0)
    (bucket,) = agg.due(180)
    data = metric_data(bucket, resolution=60)
    assert {d["StorageResolution"] for d in data["AWS/Lambda"]} == {60}
    assert data["AWS/Lambda"][0]["Timestamp"].timestamp() == 120


@pytest.mark.parametrize(("period", "lag"), [(0, 1), (60, -1)])
def test_invalid_settings_are_refused(period: float, lag: float) -> None:
    with pytest.raises(ValueError):
        PeriodAggregator(period=period, lag=lag)
