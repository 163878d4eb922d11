"""`GET /api/campaigns/instances/{id}/performance`: an instance's funnel, rates and breakdowns.

Counted from `campaign_events` over the instance's covering index, in one
read-only snapshot. `unique` without a range comes from
`enrollment_event_firsts`, the rollup that also moves the instance counters,
so the two agree by construction; with a range it is COUNT(DISTINCT
enrollment_id) over the events in the range. Rates divide `unique` counts,
as the contract says: `reply_rate` counts replies on either channel.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from typing import NamedTuple, get_args
from uuid import UUID

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from gateway.api.deps import ReadDb
from gateway.api.params import From, To, time_range
from gateway.api.schemas import (
    Channel,
    ChannelCounts,
    DayTotals,
    EmailEventType,
    LinkedinEventType,
    Performance,
    Provider,
    ProviderTotals,
    Rates,
    StepCounts,
    problems,
)
from gateway.db import reads
from gateway.errors import BadRequest, NotFound

EMAIL_TYPES: tuple[str, ...] = get_args(EmailEventType)
LINKEDIN_TYPES: tuple[str, ...] = get_args(LinkedinEventType)
ALL_TYPES: tuple[str, ...] = tuple(dict.fromkeys(EMAIL_TYPES + LINKEDIN_TYPES))
CHANNEL_TYPES: dict[Channel, tuple[str, ...]] = {"email": EMAIL_TYPES, "linkedin": LINKEDIN_TYPES}
CHANNELS: tuple[Channel, ...] = get_args(Channel)
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
#: The longest daily series answered (ten years of days).
MAX_DAYS = 3660
_TICK = timedelta(microseconds=1)
_FIRST_MOMENT = datetime.min.replace(tzinfo=UTC)


@get(
    "/campaigns/instances/{instance_id:uuid}/performance",
    summary="An instance's counts, unique counts, rates and breakdowns",
    description=(
        "Over all time, or over [from, to). `daily` holds every UTC day from `from` (else the"
        " day of the first event) to `to` (else the day of the last event), empty days"
        " included."
    ),
    responses=problems(400, 404),
)
async def instance_performance(
    db: NamedDependency[ReadDb], instance_id: FromPath[UUID], from_: From = None, to: To = None
) -> Performance:
    period = time_range(from_, to)
    async with (
        db.connection() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        enrolled = await reads.performance_enrolled(conn, instance_id, period)
        if enrolled is None:
            raise NotFound(f"no campaign instance {instance_id}")
        funnel = await reads.performance_funnel(conn, instance_id, period)
        totals = await reads.performance_totals(conn, instance_id, period)
        firsts = None if any(period) else await reads.performance_firsts(conn, instance_id)
    return summarize(
        instance_id,
        period,
        enrolled,
        [FunnelRow(**row) for row in funnel],
        [TotalRow(**row) for row in totals],
        firsts,
    )


class FunnelSet(IntEnum):
    """`grouping(channel, step_number)` of each set of `performance_funnel`."""

    OVERALL = 0b11
    BY_CHANNEL = 0b01
    BY_STEP = 0b00


class FunnelRow(NamedTuple):
    """One event type within one set of `performance_funnel`."""

    grouping_id: int
    channel: Channel | None
    step_number: int | None
    event_type: str
    total: int
    enrollments: int


class TotalRow(NamedTuple):
    """One event type per provider, or (provider None) per day, of `performance_totals`."""

    provider: Provider | None
    day: date | None
    event_type: str
    total: int


class Tally:
    """Events and distinct enrollments per event type, for one bucket."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.unique: dict[str, int] = {}

    def add(self, event_type: str, total: int, enrollments: int = 0) -> None:
        self.totals[event_type] = total
        self.unique[event_type] = enrollments

    def totals_for(self, types: tuple[str, ...]) -> dict[str, int]:
        """Every type of the vocabulary, 0 when absent: dashboards get stable keys."""
        return _filled(self.totals, types)

    def unique_for(self, types: tuple[str, ...]) -> dict[str, int]:
        return _filled(self.unique, types)


def summarize(
    instance_id: UUID,
    period: reads.TimeRange,
    enrolled: int,
    funnel: Iterable[FunnelRow],
    totals: Iterable[TotalRow],
    firsts: dict[str, int] | None,
) -> Performance:
    """The response from the query rows; `firsts`, when given, is `unique`."""
    overall = Tally()
    by_channel: defaultdict[Channel, Tally] = defaultdict(Tally)
    by_step: defaultdict[tuple[Channel, int | None], Tally] = defaultdict(Tally)
    for row in funnel:
        if row.grouping_id == FunnelSet.OVERALL:
            tally = overall
        elif row.channel is None:
            raise ValueError(f"funnel row without a channel: {row}")
        elif row.grouping_id == FunnelSet.BY_CHANNEL:
            tally = by_channel[row.channel]
        else:
            tally = by_step[(row.channel, row.step_number)]
        tally.add(row.event_type, row.total, row.enrollments)
    by_provider: defaultdict[Provider, Tally] = defaultdict(Tally)
    by_day: defaultdict[date, Tally] = defaultdict(Tally)
    for total in totals:
        if total.provider is not None:
            by_provider[total.provider].add(total.event_type, total.total)
        elif total.day is not None:
            by_day[total.day].add(total.event_type, total.total)
    unique = overall.unique_for(ALL_TYPES) if firsts is None else _filled(firsts, ALL_TYPES)
    return Performance(
        instance_id=instance_id,
        from_=period.start,
        to=period.end,
        enrolled=enrolled,
        totals=overall.totals_for(ALL_TYPES),
        unique=unique,
        rates=_rates(unique),
        by_channel=[
            ChannelCounts(
                channel=channel,
                totals=by_channel[channel].totals_for(CHANNEL_TYPES[channel]),
                unique=by_channel[channel].unique_for(CHANNEL_TYPES[channel]),
            )
            for channel in CHANNELS
        ],
        by_provider=[
            ProviderTotals(provider=provider, totals=by_provider[provider].totals_for(ALL_TYPES))
            for provider in PROVIDERS
        ],
        by_step=[
            StepCounts(
                channel=channel,
                step_number=step,
                totals=by_step[(channel, step)].totals_for(CHANNEL_TYPES[channel]),
                unique=by_step[(channel, step)].unique_for(CHANNEL_TYPES[channel]),
            )
            for channel, step in sorted(by_step, key=_step_order)
        ],
        daily=[
            DayTotals(day=day, totals=by_day[day].totals_for(ALL_TYPES))
            for day in _days(period, set(by_day))
        ],
    )


def _rates(unique: dict[str, int]) -> Rates:
    sent = unique["sent"]
    return Rates(
        delivery_rate=_ratio(unique["delivered"], sent),
        open_rate=_ratio(unique["opened"], sent),
        click_rate=_ratio(unique["clicked"], sent),
        reply_rate=_ratio(unique["replied"], sent),
        bounce_rate=_ratio(unique["bounced"], sent),
        unsubscribe_rate=_ratio(unique["unsubscribed"], sent),
        connection_accept_rate=_ratio(
            unique["connection_accepted"], unique["connection_requested"]
        ),
    )


def _filled(counts: dict[str, int], types: tuple[str, ...]) -> dict[str, int]:
    return {t: counts.get(t, 0) for t in types}


def _ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


def _step_order(key: tuple[Channel, int | None]) -> tuple[str, bool, int]:
    channel, step = key
    return channel, step is None, step or 0


def _days(period: reads.TimeRange, seen: set[date]) -> list[date]:
    """Every UTC day of the range; an open side ends at the first or last day with events."""
    first = _utc_day(period.start) if period.start else min(seen, default=None)
    if period.end is None:
        last = max(seen, default=None)
    elif period.end > _FIRST_MOMENT:
        last = _utc_day(period.end - _TICK)
    else:  # `to` at the first moment there is: nothing lies before it
        return []
    if first is None or last is None or first > last:
        return []
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(
            f"the daily series would span more than {MAX_DAYS} days; narrow from/to", field="from"
        )
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
