"""A change batch that lands while its answer is lost: botocore sends it again (standard retries), the
repeat is refused as stale, and the transition recognises its own change — applied once, no spurious
failure. The loss is made in botocore's send path, so the retries are botocore's own."""

from __future__ import annotations

import pytest
from botocore.exceptions import ConnectionClosedError
from botocore.retries import standard
from moto.core.models import botocore_stubber

from bluegreen_provider.hooks.retries import ROUTE53_MAX_ATTEMPTS
from bluegreen_provider.sandbox import route53_rules
from bluegreen_provider.state import Phase, ServiceState, TransitionRefused, abort, rollback, shift

from .conftest import RUN1, V2, planned

CHANGE = "before-send.route53.ChangeResourceRecordSets"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch) -> None:
    """botocore's jittered backoff between attempts is not what is under test here."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


class LoseAnswers:
    """Sends a ChangeResourceRecordSets to moto (so it applies) and then drops the connection.

    ``batches`` is how many distinct batches lose their answer (the first ones seen); ``every_attempt``
    also loses the answers to botocore's repeats of them, so botocore gives up.
    """

    def __init__(self, svc: ServiceState, *, batches: int = 1, every_attempt: bool = False, after_loss=None) -> None:
        self.batches = batches
        self.every_attempt = every_attempt
        self.after_loss = after_loss
        self.lost: list[bytes] = []
        self.attempts: list[bytes] = []
        svc.route53.conn.meta.events.register(CHANGE, self)

    def __call__(self, request, event_name: str, **kwargs):
        body = bytes(request.body)
        self.attempts.append(body)
        repeat = body in self.lost
        if (repeat and self.every_attempt) or (not repeat and len(self.lost) < self.batches):
            response = botocore_stubber(event_name, request)  # moto applies it (a repeat: refuses it)
            assert response is not None
            if not repeat:
                assert response.status_code == 200, "the batch must apply before its answer is lost"
                self.lost.append(body)
                if self.after_loss is not None:
                    self.after_loss()
            raise ConnectionClosedError(endpoint_url=request.url)
        return None  # moto answers


def committed(zone) -> list[route53_rules.AppliedChange]:
    """Every batch the zone committed, oldest first (the rules' change history)."""
    return route53_rules.CHANGES.zone(zone.zone_id)


def split_of(change: route53_rules.AppliedChange) -> dict[str, int]:
    return {r["SetIdentifier"]: int(r["Weight"]) for r in change.record_sets if "Weight" in r}


def test_a_shift_whose_answer_was_lost_lands_once_and_succeeds(zone) -> None:
    svc = planned(zone)
    before = zone.state()
    changes_before = len(committed(zone))
    lose = LoseAnswers(svc)

    outcome = shift(svc, RUN1, 10, previous_pct=0, serving=V2)

    assert outcome is not None, "a change that landed must not read as 'already there'"
    assert zone.split() == {"blue": 90, "green": 10}
    state = zone.state()
    assert (state.phase, state.generation) == (Phase.SHIFTING, before.generation + 1)
    assert outcome.state == state
    assert outcome.before.split == {"blue": 100, "green": 0} and outcome.split_changed
    # the batch, botocore's refused repeat, and the confirmation that yields a change id
    assert len(lose.attempts) == 3
    new = committed(zone)[changes_before:]
    assert len(new) == 2, [c.comment for c in new]
    assert "landed, answer lost" in new[1].comment
    assert [split_of(c) for c in new] == [{"blue": 90, "green": 10}] * 2
    assert outcome.change_id == new[1].change_id
    assert zone.client.get_change(Id=outcome.change_id)["ChangeInfo"]["Status"] in ("PENDING", "INSYNC")


def test_a_rollback_whose_answer_was_lost_reports_that_it_rolled_back(zone) -> None:
    svc = planned(zone)
    shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    generation = zone.state().generation
    LoseAnswers(svc)

    outcome = rollback(svc, RUN1, "soak_10 failed")

    assert zone.split() == {"blue": 100, "green": 0}
    assert (outcome.state.phase, outcome.state.generation) == (Phase.ROLLED_BACK, generation + 1)
    assert outcome.before.split == {"blue": 90, "green": 10}
    assert zone.state() == outcome.state


def test_when_botocore_gives_up_after_the_batch_landed_the_transition_still_succeeds(zone) -> None:
    svc = planned(zone)
    generation = zone.state().generation
    lose = LoseAnswers(svc, every_attempt=True)

    outcome = shift(svc, RUN1, 10, previous_pct=0, serving=V2)

    assert outcome is not None and outcome.state.split == {"blue": 90, "green": 10}
    assert zone.split() == {"blue": 90, "green": 10}
    assert zone.state().generation == generation + 1
    # every attempt of the first batch lost its answer, then one confirmation went through
    assert len(lose.attempts) == ROUTE53_MAX_ATTEMPTS + 1
    assert b"landed, answer lost" in lose.attempts[-1]


def test_a_batch_that_never_landed_still_fails_with_the_error(zone) -> None:
    svc = planned(zone)
    before = zone.state()
    attempts: list[int] = []

    def drop_unsent(request, **kwargs):
        attempts.append(1)
        raise ConnectionClosedError(endpoint_url=request.url)

    svc.route53.conn.meta.events.register(CHANGE, drop_unsent)
    with pytest.raises(ConnectionClosedError):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2)
    assert len(attempts) == ROUTE53_MAX_ATTEMPTS
    assert zone.state() == before
    assert zone.split() == {"blue": 100, "green": 0}


def test_a_landed_shift_superseded_before_its_repeat_decides_again_and_is_refused(zone) -> None:
    svc = planned(zone)
    other = zone.service()  # someone's emergency rollback, on its own client
    LoseAnswers(svc, after_loss=lambda: abort(other, "oncall", "page", retained_serving=lambda slot: {}))

    with pytest.raises(TransitionRefused, match="rolled back by hand"):
        shift(svc, RUN1, 10, previous_pct=0, serving=V2)

    state = zone.state()
    assert (state.phase, state.reason) == (Phase.ABORTED, "page by oncall")
    assert zone.split() == {"blue": 100, "green": 0}


def test_a_confirmation_whose_own_answer_is_lost_is_repeated_harmlessly(zone) -> None:
    svc = planned(zone)
    generation = zone.state().generation
    lose = LoseAnswers(svc, batches=2)  # the batch, then its confirmation

    outcome = shift(svc, RUN1, 10, previous_pct=0, serving=V2)

    assert outcome is not None
    assert zone.state().generation == generation + 1
    assert zone.split() == {"blue": 90, "green": 10}
    # batch (lost), repeat (refused), confirmation (lost), its repeat (accepted: same record again)
    assert len(lose.attempts) == 4
    assert zone.client.get_change(Id=outcome.change_id)["ChangeInfo"]["Id"].endswith(outcome.change_id)
