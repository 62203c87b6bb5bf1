"""Traffic follows the live Route53 weights and Lambda aliases, runs the deployed code and is published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bluegreen_provider.sandbox import Sandbox
from bluegreen_provider.sandbox.releases import build_zip


def test_all_traffic_lands_on_blue_at_100_0(sandbox: Sandbox, wait_until) -> None:
    wait_until(lambda: sandbox.stats()["blue"]["requests"] >= 400, what="400 requests on blue")
    stats = sandbox.stats()
    assert stats["green"]["requests"] == 0
    assert stats["blue"]["errors"] == 0
    assert {f["release"] for f in stats["blue"]["functions"].values()} == {"v1"}
    assert all(f["requests"] > 0 for f in stats["blue"]["functions"].values())


def test_50_50_splits_traffic_between_slots(sandbox: Sandbox, set_weights, wait_until) -> None:
    set_weights(50, 50)
    wait_until(lambda: sandbox.stats()["green"]["requests"] > 0, what="green to receive traffic")
    start = sandbox.stats()
    wait_until(
        lambda: sandbox.stats()["green"]["requests"] - start["green"]["requests"] >= 500, what="500 more on green"
    )
    end = sandbox.stats()
    blue = end["blue"]["requests"] - start["blue"]["requests"]
    green = end["green"]["requests"] - start["green"]["requests"]
    assert 0.4 < green / (blue + green) < 0.6


def test_bad_release_on_green_fails_only_green(sandbox: Sandbox, set_weights, deploy, wait_until) -> None:
    versions = deploy("bad", "green")
    # Lambda serves a moved alias at once; the router re-reads aliases each refresh: shift after it has.
    wait_until(
        lambda: all(sandbox._router.target(fn, "green").version == v for fn, v in versions.items()),
        what="the router to see the bad release on green",
    )
    set_weights(50, 50)
    wait_until(lambda: sandbox.stats()["green"]["errors"] >= 50, what="errors on green")
    stats = sandbox.stats()
    assert stats["blue"]["errors"] == 0
    assert stats["blue"]["requests"] > 0
    # The blast radius: every green function runs the bad release and fails, no blue one does.
    assert {f["release"] for f in stats["green"]["functions"].values()} == {"bad"}
    assert all(f["errors"] > 0 for f in stats["green"]["functions"].values())
    assert 0 < stats["green"]["function_errors"] < stats["green"]["errors"]


def test_unknown_code_is_a_502_on_its_slot(sandbox: Sandbox, set_weights, deploy, wait_until) -> None:
    deploy("foreign", "green", ("lego-api-wishlist",), zip_bytes=build_zip(b"def handler(e, c):\n    return {}\n"))
    set_weights(0, 100)
    wait_until(lambda: sandbox.stats()["green"]["functions"]["lego-api-wishlist"]["errors"] >= 10, what="wishlist 502s")
    green = sandbox.stats()["green"]["functions"]
    assert green["lego-api-wishlist"]["release"] == "unknown"
    assert green["lego-api-wishlist"]["errors"] == green["lego-api-wishlist"]["requests"]
    assert green["lego-api-moc"]["errors"] == 0 and green["lego-api-moc"]["requests"] > 0


def _metric(sandbox: Sandbox, namespace: str, name: str, dims: dict[str, str]) -> float | None:
    now = datetime.now(UTC)
    result = sandbox.clients()("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 600,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
    )["MetricDataResults"][0]
    return sum(result["Values"]) if result["Values"] else None


def test_metrics_reach_cloudwatch(sandbox: Sandbox, set_weights, deploy, wait_until) -> None:
    sandbox.wait_for_flushes(2)
    # Blue only so far: green's requests are a visible zero, its errors are "no data".
    assert _metric(sandbox, "AWS/ApiGateway", "Count", {"ApiName": "lego-api-blue"}) > 0
    assert _metric(sandbox, "AWS/ApiGateway", "5XXError", {"ApiName": "lego-api-blue"}) == 0
    assert _metric(sandbox, "AWS/ApiGateway", "Count", {"ApiName": "lego-api-green"}) == 0
    assert _metric(sandbox, "AWS/ApiGateway", "5XXError", {"ApiName": "lego-api-green"}) is None

    deploy("bad", "green")
    set_weights(50, 50)
    wait_until(lambda: sandbox.stats()["green"]["errors"] > 0, what="green errors")
    sandbox.wait_for_flushes(2)
    stats = sandbox.stats()
    published_green_5xx = _metric(sandbox, "AWS/ApiGateway", "5XXError", {"ApiName": "lego-api-green"})
    assert 0 < published_green_5xx <= stats["green"]["errors"]
    total = _metric(sandbox, "AWS/ApiGateway", "Count", {"ApiName": "lego-api"})
    by_slot = sum(_metric(sandbox, "AWS/ApiGateway", "Count", {"ApiName": f"lego-api-{s}"}) for s in ("blue", "green"))
    assert total == by_slot > 0
    moc_green = {"FunctionName": "lego-api-moc", "Resource": "lego-api-moc:production-green"}
    assert _metric(sandbox, "AWS/Lambda", "Invocations", moc_green) > 0
    assert _metric(sandbox, "AWS/Lambda", "Errors", moc_green) > 0
    moc_blue = {"FunctionName": "lego-api-moc", "Resource": "lego-api-moc:production-blue"}
    assert _metric(sandbox, "AWS/Lambda", "Errors", moc_blue) == 0
    assert _metric(sandbox, "AWS/Lambda", "Errors", {"FunctionName": "lego-api-moc"}) == _metric(
        sandbox, "AWS/Lambda", "Errors", moc_green
    )
