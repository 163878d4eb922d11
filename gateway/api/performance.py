"""`GET /api/campaigns/instances/{id}/performance`: an instance's funnel, rates and breakdowns.

Counted from `campaign_events` over the instance's covering index, in one
read-only snapshot: `unique` is COUNT(DISTINCT enrollment_id) per event type.
Every rate is a unique count over its channel's reach (contract §5), and the
answer says which in `rate_definitions`: e-mail rates count e-mail events over
the enrollments with an e-mail `sent`, `delivered` or `bounced` event (Postmark
reports no `sent`), `connection_accept_rate` is over `connection_requested`.
The same definitions give the rates per channel, per step and per provider.
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
    CountRule,
    DayTotals,
    EmailEventType,
    LinkedinEventType,
    Performance,
    Provider,
    ProviderTotals,
    RateDefinition,
    Rates,
    Reach,
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
        reach = await reads.performance_reach(conn, instance_id, period)
        totals = await reads.performance_totals(conn, instance_id, period)
    return summarize(
        instance_id,
        period,
        enrolled,
        [FunnelRow(**row) for row in funnel],
        [ReachRow(**row) for row in reach],
        [TotalRow(**row) for row in totals],
    )


class FunnelSet(IntEnum):
    """`grouping(channel, step_number, provider)` of each set of `performance_funnel`."""

    OVERALL = 0b111
    BY_CHANNEL = 0b011
    BY_STEP = 0b001
    BY_PROVIDER = 0b110
    BY_PROVIDER_CHANNEL = 0b010


class FunnelRow(NamedTuple):
    """One event type within one set of `performance_funnel`."""

    grouping_id: int
    channel: Channel | None
    step_number: int | None
    provider: Provider | None
    event_type: str
    total: int
    enrollments: int


class ReachSet(IntEnum):
    """`grouping(step_number, provider)` of each set of `performance_reach`."""

    OVERALL = 0b11
    BY_STEP = 0b01
    BY_PROVIDER = 0b10


class ReachRow(NamedTuple):
    """The e-mail reach of one set of `performance_reach`."""

    grouping_id: int
    step_number: int | None
    provider: Provider | None
    reach: int


#: Enrollments with any of these e-mail events have been reached by e-mail.
EMAIL_REACH: tuple[str, ...] = ("sent", "delivered", "bounced")
#: Each rate: (channel, event type counted, what it means).
RATES: dict[str, tuple[Channel, str, str]] = {
    "delivery_rate": ("email", "delivered", "delivered e-mails"),
    "open_rate": ("email", "opened", "opened e-mails"),
    "click_rate": ("email", "clicked", "clicked e-mail links"),
    "reply_rate": ("email", "replied", "replied to an e-mail"),
    "bounce_rate": ("email", "bounced", "bounced e-mails"),
    "unsubscribe_rate": ("email", "unsubscribed", "unsubscribed"),
    "connection_accept_rate": ("linkedin", "connection_accepted", "accepted a connection"),
}
REACH: dict[Channel, tuple[str, ...]] = {
    "email": EMAIL_REACH,
    "linkedin": ("connection_requested",),
}
RATE_DEFINITIONS: dict[str, RateDefinition] = {
    name: RateDefinition(
        numerator=CountRule(channel=channel, event_types=[event_type]),
        denominator=CountRule(channel=channel, event_types=list(REACH[channel])),
        description=f"enrollments that {meaning}, over the enrollments"
        + (
            " with an e-mail sent, delivered or bounced"
            if channel == "email"
            else " with a connection requested"
        ),
    )
    for name, (channel, event_type, meaning) in RATES.items()
}


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
    reach: Iterable[ReachRow],
    totals: Iterable[TotalRow],
) -> Performance:
    """The response from the query rows."""
    overall = Tally()
    by_channel: defaultdict[Channel, Tally] = defaultdict(Tally)
    by_step: defaultdict[tuple[Channel, int | None], Tally] = defaultdict(Tally)
    by_provider: defaultdict[Provider, Tally] = defaultdict(Tally)
    by_provider_channel: defaultdict[tuple[Provider, Channel], Tally] = defaultdict(Tally)
    for row in funnel:
        if row.grouping_id == FunnelSet.OVERALL:
            tally = overall
        elif row.grouping_id == FunnelSet.BY_PROVIDER and row.provider is not None:
            tally = by_provider[row.provider]
        elif row.channel is None:
            raise ValueError(f"funnel row without a channel: {row}")
        elif row.grouping_id == FunnelSet.BY_CHANNEL:
            tally = by_channel[row.channel]
        elif row.grouping_id == FunnelSet.BY_STEP:
            tally = by_step[(row.channel, row.step_number)]
        elif row.grouping_id == FunnelSet.BY_PROVIDER_CHANNEL and row.provider is not None:
            tally = by_provider_channel[(row.provider, row.channel)]
        else:
            raise ValueError(f"funnel row of no known set: {row}")
        tally.add(row.event_type, row.total, row.enrollments)
    email_reach, step_reach, provider_reach = _reach(reach)
    by_day: defaultdict[date, Tally] = defaultdict(Tally)
    for total in totals:
        if total.day is not None:
            by_day[total.day].add(total.event_type, total.total)
    email, linkedin = by_channel["email"], by_channel["linkedin"]
    return Performance(
        instance_id=instance_id,
        from_=period.start,
        to=period.end,
        enrolled=enrolled,
        totals=overall.totals_for(ALL_TYPES),
        unique=overall.unique_for(ALL_TYPES),
        reach=Reach(email=email_reach, linkedin=linkedin.unique.get("connection_requested", 0)),
        rates=_rates(email, email_reach, linkedin),
        rate_definitions=RATE_DEFINITIONS,
        by_channel=[
            ChannelCounts(
                channel=channel,
                totals=by_channel[channel].totals_for(CHANNEL_TYPES[channel]),
                unique=by_channel[channel].unique_for(CHANNEL_TYPES[channel]),
                rates=_rates(email, email_reach, None)
                if channel == "email"
                else _rates(None, 0, linkedin),
            )
            for channel in CHANNELS
        ],
        by_provider=[
            ProviderTotals(
                provider=provider,
                totals=by_provider[provider].totals_for(ALL_TYPES),
                unique=by_provider[provider].unique_for(ALL_TYPES),
                rates=_rates(
                    by_provider_channel[(provider, "email")],
                    provider_reach.get(provider, 0),
                    by_provider_channel[(provider, "linkedin")],
                ),
            )
            for provider in PROVIDERS
        ],
        by_step=[
            StepCounts(
                channel=channel,
                step_number=step,
                totals=by_step[(channel, step)].totals_for(CHANNEL_TYPES[channel]),
                unique=by_step[(channel, step)].unique_for(CHANNEL_TYPES[channel]),
                rates=_rates(by_step[(channel, step)], step_reach.get(step, 0), None)
                if channel == "email"
                else _rates(None, 0, by_step[(channel, step)]),
            )
            for channel, step in sorted(by_step, key=_step_order)
        ],
        daily=[
            DayTotals(day=day, totals=by_day[day].totals_for(ALL_TYPES))
            for day in _days(period, set(by_day))
        ],
    )


def _reach(rows: Iterable[ReachRow]) -> tuple[int, dict[int | None, int], dict[Provider, int]]:
    """The e-mail reach overall, per step and per provider."""
    overall = 0
    per_step: dict[int | None, int] = {}
    per_provider: dict[Provider, int] = {}
    for row in rows:
        if row.grouping_id == ReachSet.OVERALL:
            overall = row.reach
        elif row.grouping_id == ReachSet.BY_STEP:
            per_step[row.step_number] = row.reach
        elif row.provider is not None:
            per_provider[row.provider] = row.reach
    return overall, per_step, per_provider


def _rates(email: Tally | None, email_reach: int, linkedin: Tally | None) -> Rates:
    """Each rate over its channel's reach; a channel not given has no rates."""

    def rate(name: str) -> float | None:
        channel, event_type, _meaning = RATES[name]
        if channel == "email":
            return None if email is None else _ratio(email.unique.get(event_type, 0), email_reach)
        if linkedin is None:
            return None
        return _ratio(
            linkedin.unique.get(event_type, 0), linkedin.unique.get("connection_requested", 0)
        )

    return Rates(**{name: rate(name) for name in RATES})


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
    last = _utc_day(period.end - _TICK) if period.end else max(seen, default=None)
    if first is None or last is None or first > last:
        return []
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(
            f"the daily series would span more than {MAX_DAYS} days; narrow from/to", field="from"
        )
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()
