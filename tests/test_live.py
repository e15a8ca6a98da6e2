"""When a waiting customer is told their new place in line (handoff/live.py)."""

from handoff.live import TELL_AGAIN_S, worth_telling


def test_a_place_is_told_once_and_only_forward() -> None:
    assert worth_telling(7, None, 0.0, 1000.0)  # never told
    assert not worth_telling(7, 7, 900.0, 1000.0)  # the same place
    assert not worth_telling(8, 7, 0.0, 1000.0)  # fell back behind a more urgent chat: not said


def test_near_the_front_every_step_further_back_real_steps() -> None:
    now = 1000.0
    assert worth_telling(3, 4, now - 1, now) and worth_telling(1, 2, now - 1, now)
    assert not worth_telling(40, 41, now - 1, now)  # one step from far back: not worth a message
    assert worth_telling(32, 41, now - 1, now)  # a fifth of the way: said
    assert worth_telling(40, 41, now - TELL_AGAIN_S, now)  # or after a while, if they moved at all
