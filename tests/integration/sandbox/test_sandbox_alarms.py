"""Alarms react to published traffic the way CloudWatch would; forced alarms hold until released."""

from __future__ import annotations

from bluegreen_provider.sandbox import Sandbox

GATEWAY = "lego-api-gateway-5xx-errors"


def _alarm(sandbox: Sandbox, name: str) -> dict:
    return sandbox.clients()("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def test_alarms_start_without_data_and_healthy_traffic_leaves_them_ok(sandbox: Sandbox, set_weights, deploy) -> None:
    assert _alarm(sandbox, GATEWAY)["StateValue"] in {"INSUFFICIENT_DATA", "OK"}
    deploy("v2", "green")
    set_weights(50, 50)
    sandbox.wait_for_flushes(int(sandbox.alarm_period / sandbox.flush_seconds) + 2)  # a full alarm period
    states = sandbox.alarm_states()
    assert states == dict.fromkeys(states, "OK") and len(states) == 4
    assert sandbox.stats()["green"]["requests"] > 0


def test_bad_release_at_half_traffic_raises_the_alarms(sandbox: Sandbox, set_weights, deploy, wait_until) -> None:
    deploy("bad", "green")
    set_weights(50, 50)
    wait_until(lambda: _alarm(sandbox, GATEWAY)["StateValue"] == "ALARM", what=f"{GATEWAY} in ALARM")
    alarm = _alarm(sandbox, GATEWAY)
    assert "greater than the threshold" in alarm["StateReason"]
    wait_until(lambda: _alarm(sandbox, "lego-api-moc-errors")["StateValue"] == "ALARM", what="moc alarm")
    alarming = sandbox.clients()("cloudwatch").describe_alarms(StateValue="ALARM")["MetricAlarms"]
    assert GATEWAY in {a["AlarmName"] for a in alarming}
    assert sandbox.stats()["blue"]["errors"] == 0

    # Rolling back (all traffic to blue) lets the alarm recover once the bad period ages out.
    set_weights(100, 0)
    wait_until(
        lambda: _alarm(sandbox, GATEWAY)["StateValue"] == "OK", timeout=sandbox.alarm_period + 20, what="recovery"
    )


def test_forced_alarm_holds_against_the_evaluator_until_released(
    sandbox: Sandbox, set_weights, deploy, wait_until
) -> None:
    sandbox.force_alarm(GATEWAY, "ALARM", reason="drill: gateway on fire")
    sandbox.wait_for_flushes(4)
    alarm = _alarm(sandbox, GATEWAY)
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "drill: gateway on fire")
    sandbox.release_alarm(GATEWAY)
    assert _alarm(sandbox, GATEWAY)["StateValue"] == "OK"

    # Forced OK also holds while the data says otherwise (other alarms still follow the data).
    sandbox.force_alarm(GATEWAY, "OK", reason="drill: silenced")
    deploy("bad", "green")
    set_weights(50, 50)
    wait_until(lambda: _alarm(sandbox, "lego-api-moc-errors")["StateValue"] == "ALARM", what="moc alarm")
    sandbox.wait_for_flushes(2)
    assert _alarm(sandbox, GATEWAY)["StateValue"] == "OK"
    sandbox.release_alarm(GATEWAY)
    assert _alarm(sandbox, GATEWAY)["StateValue"] == "ALARM"
