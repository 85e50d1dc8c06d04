"""The gap arithmetic of lineside central: what is missing, and what to ask for again."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lineside.central.gaps import GatewaySeqs, Island, Plan, Request, new_gaps, plan

GRACE, RETRY, MAX = 10.0, 30.0, 1000


def run(seqs: GatewaySeqs, now: float = 100.0) -> Plan:
    return plan(seqs, now, GRACE, RETRY, MAX)


def test_in_order_seqs_advance_contiguous_and_nothing_is_missing() -> None:
    got = run(GatewaySeqs(contiguous=4, islands=(Island(5, 9, 50.0),)))
    assert got == Plan(9, (), None)


def test_without_from_start_the_first_seq_seen_starts_the_gateway_after_the_grace() -> None:
    young = GatewaySeqs(contiguous=None, islands=(Island(40, 41, 95.0),))
    assert plan(young, 100.0, GRACE, RETRY, MAX, from_start=False) == Plan(None, (), None)
    old = GatewaySeqs(contiguous=None, islands=(Island(40, 41, 80.0), Island(43, 43, 85.0)))
    got = plan(old, 100.0, GRACE, RETRY, MAX, from_start=False)
    assert got == Plan(41, ((42, 42),), (42, 42))


def test_from_start_what_came_before_the_first_seq_seen_is_missing() -> None:
    seqs = GatewaySeqs(contiguous=None, islands=(Island(40, 41, 80.0), Island(43, 43, 85.0)))
    assert run(seqs) == Plan(0, ((1, 39), (42, 42)), (1, 42))
    # A gateway known from its status only, none of its messages landed: all of them.
    assert run(GatewaySeqs(contiguous=None, islands=(), probe=True)) == Plan(0, (), (1, None))


def test_a_hole_is_a_gap_only_after_a_later_seq_waited_the_grace_period() -> None:
    seqs = GatewaySeqs(contiguous=10, islands=(Island(13, 20, 95.0),))
    assert run(seqs) == Plan(10, (), None)  # 11 and 12 may be in flight at another consumer
    assert run(seqs, now=105.0) == Plan(10, ((11, 12),), (11, 12))


def test_the_evidence_for_a_hole_is_the_earliest_later_arrival() -> None:
    # 15 arrived late (a replay of 15 only), but 20..22 have been there long.
    seqs = GatewaySeqs(contiguous=10, islands=(Island(15, 15, 99.0), Island(20, 22, 50.0)))
    got = run(seqs)
    assert got.missing == ((11, 14), (16, 19))
    assert got.request == (11, 19)  # every gap within reach in one request
    assert got.missing_seqs == 8


def test_one_request_at_a_time_and_again_after_retry() -> None:
    pending = Request(11, 12, requested=90.0, answered=None)
    seqs = GatewaySeqs(contiguous=10, islands=(Island(13, 20, 50.0),), request=pending)
    assert run(seqs).request is None
    assert run(seqs, now=121.0).request == (11, 12)


def test_after_an_answer_the_replayed_messages_get_the_grace_period_to_land() -> None:
    answered = Request(11, 12, requested=90.0, answered=95.0)
    seqs = GatewaySeqs(contiguous=10, islands=(Island(13, 20, 50.0),), request=answered)
    assert run(seqs).request is None
    assert run(seqs, now=106.0).request == (11, 12)


def test_a_request_is_bounded() -> None:
    seqs = GatewaySeqs(contiguous=0, islands=(Island(5001, 5001, 10.0),))
    assert plan(seqs, 100.0, GRACE, RETRY, 500).request == (1, 500)
    alternating = tuple(Island(s, s, 10.0) for s in range(2, 2000, 2))
    got = plan(GatewaySeqs(contiguous=0, islands=alternating), 100.0, GRACE, RETRY, 500)
    assert got.request == (1, 499)


def test_what_the_gateway_announced_beyond_the_newest_seq_is_missing_too() -> None:
    seqs = GatewaySeqs(contiguous=20, islands=(), announced=30, announced_at=80.0)
    assert run(seqs) == Plan(20, ((21, 30),), (21, 30))
    fresh = GatewaySeqs(contiguous=20, islands=(), announced=30, announced_at=95.0)
    assert run(fresh).missing == ()


def test_a_probe_asks_for_everything_after_the_newest_seq() -> None:
    seqs = GatewaySeqs(contiguous=20, islands=(Island(22, 25, 99.0),), probe=True)
    assert run(seqs) == Plan(20, (), (26, None))


def test_gaps_go_before_a_probe() -> None:
    seqs = GatewaySeqs(contiguous=20, islands=(Island(22, 25, 50.0),), probe=True)
    assert run(seqs).request == (21, 21)


def test_new_gaps_are_those_not_seen_in_the_last_plan() -> None:
    assert new_gaps(((5, 9),), ((5, 7), (12, 12))) == [(12, 12)]
    assert new_gaps((), ((1, 2),)) == [(1, 2)]


@given(
    present=st.sets(st.integers(1, 200), min_size=1),
    now=st.floats(0, 1000),
)
def test_every_absent_seq_below_the_newest_is_missing(present: set[int], now: float) -> None:
    ordered = sorted(present)
    islands: list[Island] = []
    for seq in ordered:
        if islands and islands[-1].last == seq - 1:
            islands[-1] = Island(islands[-1].first, seq, 0.0)
        else:
            islands.append(Island(seq, seq, 0.0))
    got = plan(GatewaySeqs(contiguous=0, islands=tuple(islands)), now + GRACE, GRACE, RETRY, MAX)
    missing = {s for a, b in got.missing for s in range(a, b + 1)}
    first_gap = min(set(range(1, ordered[-1] + 1)) - present, default=None)
    assert missing == set(range(1, ordered[-1] + 1)) - present
    assert got.contiguous == (ordered[-1] if first_gap is None else first_gap - 1)
