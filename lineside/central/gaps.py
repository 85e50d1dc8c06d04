"""Which seqs of a gateway are missing, and what to ask it for again: pure, no I/O.

A shared subscription hands one gateway's messages to several consumers, which land them
in any order. So a gap is decided from what the database holds, never from the order of
arrival: a seq is missing when it is absent while some later seq has been in the database
for longer than the grace period (a message in flight at another consumer lands within
it). All times are the database's clock, in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Island:
    """A run of seqs first..last all in the database; received: the earliest of them."""

    first: int
    last: int
    received: float


@dataclass(frozen=True, slots=True)
class Request:
    """The newest replay request to a gateway."""

    from_seq: int
    to_seq: int | None
    requested: float
    answered: float | None


@dataclass(frozen=True, slots=True)
class GatewaySeqs:
    """What the database knows of one gateway's seqs."""

    contiguous: int | None  # every seq from the first one up to this one is accounted for
    islands: tuple[Island, ...]  # runs above contiguous, in seq order
    announced: int = 0  # the newest seq the gateway said it holds (a replay's reply)
    announced_at: float | None = None
    request: Request | None = None
    probe: bool = False  # ask for what follows the newest seq (the link was lost)


@dataclass(frozen=True, slots=True)
class Plan:
    contiguous: int | None
    missing: tuple[tuple[int, int], ...]  # gaps past the grace period, oldest first
    request: tuple[int, int | None] | None  # the range to ask for now (to_seq None: the rest)

    @property
    def missing_seqs(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)


def plan(
    seqs: GatewaySeqs,
    now: float,
    grace_s: float,
    retry_s: float,
    max_messages: int,
    from_start: bool = True,
) -> Plan:
    """The gateway's new contiguous seq, its gaps, and the one request to send, if any.

    from_start: a gateway's seqs start at 1, whatever seq arrived first, so what came
    before it is missing too (asked for, and answered not_held where it is pruned).
    Otherwise the first seq seen is where the gateway starts for us (docs/mqtt.md: accept
    any seq first), once the seqs around it have had the grace period to land.

    One request per gateway at a time: the next one goes when the last was answered and
    the grace period has let its messages land, or after retry_s without an answer.
    """
    islands = list(seqs.islands)
    contiguous = seqs.contiguous
    if contiguous is None and from_start:
        contiguous = 0
    elif contiguous is None:
        if not islands or now - min(i.received for i in islands) < grace_s:
            return Plan(None, (), None)
        contiguous = islands[0].first - 1
    while islands and islands[0].first <= contiguous + 1:
        contiguous = max(contiguous, islands.pop(0).last)
    holes = _holes(contiguous, islands)
    top = max(contiguous, islands[-1].last if islands else contiguous)
    if seqs.announced > top and seqs.announced_at is not None:
        holes.append((top + 1, seqs.announced, seqs.announced_at))
    missing = tuple((a, b) for a, b, seen in holes if now - seen >= grace_s)
    request: tuple[int, int | None] | None = None
    if not _waiting(seqs.request, now, grace_s, retry_s):
        if missing:
            # One request for every gap within reach: many small gaps (a shared
            # subscription's member lost its share) would otherwise take a round trip each.
            first = missing[0][0]
            bound = first + max_messages - 1
            request = (first, min(bound, max(b for a, b in missing if a <= bound)))
        elif seqs.probe:
            request = (max(top, seqs.announced) + 1, None)
    return Plan(contiguous, missing, request)


def _holes(contiguous: int, islands: list[Island]) -> list[tuple[int, int, float]]:
    """(first, last, since) of each hole below an island; since: the earliest arrival of
    any later seq, the evidence that the hole is not just a message still in flight."""
    out: list[tuple[int, int, float]] = []
    later = float("inf")
    evidence: list[float] = []
    for island in reversed(islands):
        later = min(later, island.received)
        evidence.append(later)
    evidence.reverse()
    cursor = contiguous
    for island, since in zip(islands, evidence, strict=True):
        if island.first > cursor + 1:
            out.append((cursor + 1, island.first - 1, since))
        cursor = island.last
    return out


def _waiting(request: Request | None, now: float, grace_s: float, retry_s: float) -> bool:
    if request is None:
        return False
    if request.answered is None:
        return now - request.requested < retry_s
    return now - request.answered < grace_s


def new_gaps(
    before: tuple[tuple[int, int], ...], after: tuple[tuple[int, int], ...]
) -> list[tuple[int, int]]:
    """The gaps of after that overlap none of before: found since the last plan."""
    return [g for g in after if not any(g[0] <= b[1] and b[0] <= g[1] for b in before)]
