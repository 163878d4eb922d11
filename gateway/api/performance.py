"""`GET /api/campaigns/instances/{id}/performance`: an instance's funnel, rates and breakdowns.

Counted from `campaign_events` over the instance's covering index, in one
read-only snapshot: `unique` is COUNT(DISTINCT enrollment_id) per event type.
Every rate is a unique count over its channel's reach (contract §5), and the
answer says which in `rate_definitions`: e-mail rates count e-mail events over
the enrollments with an e-mail `sent`, `delivered` or `bounced` event (Postmark
reports no `sent`), `connection_accept_rate` is over `connection_requested`.
The same definitions give the rates per channel, per step and per provider.
`human` counts what people did: opens and clicks without `metadata.machine`
(gateway/engagement.py), over the e-mail reach. `daily`, and dates given as
`from`/`to`, are in the time zone `tz` (default the instance's
`settings.timezone`, else UTC).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from typing import Annotated, NamedTuple, get_args
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from litestar import get
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import FromPath, QueryParameter

from gateway.api.deps import ReadDb
from gateway.api.params import From, To, time_range
from gateway.api.schemas import (
    ChannelCounts,
    CountRule,
    DayTotals,
    HumanEngagement,
    HumanUnique,
    Performance,
    ProviderTotals,
    RateDefinition,
    Rates,
    Reach,
    StepCounts,
    problems,
)
from gateway.db import reads
from gateway.errors import BadRequest, NotFound
from providers.vocabulary import (
    CHANNELS,
    PROVIDERS,
    Channel,
    EmailEventType,
    EventType,
    LinkedinEventType,
    Provider,
)

EMAIL_TYPES: tuple[str, ...] = get_args(EmailEventType)
LINKEDIN_TYPES: tuple[str, ...] = get_args(LinkedinEventType)
ALL_TYPES: tuple[str, ...] = get_args(EventType)
CHANNEL_TYPES: dict[Channel, tuple[str, ...]] = {"email": EMAIL_TYPES, "linkedin": LINKEDIN_TYPES}
#: The longest daily series answered (ten years of days).
MAX_DAYS = 3660
_TICK = timedelta(microseconds=1)
_FIRST_MOMENT = datetime.min.replace(tzinfo=UTC)
UTC_ZONE = "UTC"

Tz = Annotated[
    str | None,
    QueryParameter(
        description="IANA time zone of `daily` and of dates given as `from`/`to`"
        " (default: the instance's `settings.timezone`, else UTC)",
        examples=[Example(value="Asia/Tokyo")],
    ),
]


@get(
    "/campaigns/instances/{instance_id:uuid}/performance",
    summary="An instance's counts, unique counts, rates and breakdowns",
    description=(
        "Over all time, or over [from, to). `daily` holds every day of the time zone `tz`"
        " from `from` (else the day of the first event) to `to` (else the day of the last"
        " event), empty days included. `human` counts opens and clicks that no privacy proxy"
        " or security scanner made."
    ),
    responses=problems(400, 404),
)
async def instance_performance(
    db: NamedDependency[ReadDb],
    instance_id: FromPath[UUID],
    from_: From = None,
    to: To = None,
    tz: Tz = None,
) -> Performance:
    asked = None if tz is None else zone_named(tz, "`tz`")
    time_range(from_, to, asked or ZoneInfo(UTC_ZONE))  # a malformed time is a 400 before a 404
    async with (
        db.connection() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        exists, own = await reads.instance_timezone(conn, instance_id)
        if not exists:
            raise NotFound(f"no campaign instance {instance_id}")
        if asked is not None:
            zone = asked
        elif own is not None:
            zone = zone_named(own, "the instance's settings.timezone; pass `tz` instead:")
        else:
            zone = ZoneInfo(UTC_ZONE)
        period = time_range(from_, to, zone)
        enrolled = await reads.performance_enrolled(conn, instance_id, period) or 0
        funnel = await reads.performance_funnel(conn, instance_id, period)
        try:
            totals = await reads.performance_totals(conn, instance_id, period, zone.key)
            human = await reads.performance_human(conn, instance_id, period, zone.key)
        except asyncpg.InvalidParameterValueError as exc:  # a zone Python knows, PostgreSQL not
            raise BadRequest(
                f"time zone {zone.key!r} is not known to the database", field="tz"
            ) from exc
    return summarize(
        instance_id,
        period,
        enrolled,
        [FunnelRow(**row) for row in funnel],
        [TotalRow(**row) for row in totals],
        [HumanRow(**row) for row in human],
        zone=zone,
    )


def zone_named(name: str, what: str) -> ZoneInfo:
    """The IANA time zone of that name; an unknown one is a 400 naming `tz`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise BadRequest(f"{what} {name[:80]!r} is not a known IANA time zone", field="tz") from exc


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
} | {
    f"human_{kind}_rate": RateDefinition(
        numerator=CountRule(channel="email", event_types=[event_type], human=True),
        denominator=CountRule(channel="email", event_types=list(EMAIL_REACH)),
        description=f"enrollments where a person {verb} an e-mail (no privacy proxy or scanner),"
        " over the enrollments with an e-mail sent, delivered or bounced",
    )
    for kind, event_type, verb in (("open", "opened", "opened"), ("click", "clicked", "clicked"))
}


class TotalRow(NamedTuple):
    """One event type on one day of `performance_totals`."""

    day: date
    event_type: str
    total: int


class HumanSet(IntEnum):
    """`grouping(step_number, day, provider)` of each set of `performance_human`."""

    OVERALL = 0b111
    BY_STEP = 0b011
    BY_DAY = 0b101
    BY_PROVIDER = 0b110


class HumanRow(NamedTuple):
    """Enrollments per measure (`reach`, `opened`, `clicked`) in one set of `performance_human`."""

    grouping_id: int
    step_number: int | None
    day: date | None
    provider: Provider | None
    measure: str
    enrollments: int

    @property
    def bucket(self) -> int | date | str | None:
        """The step, day or provider the row counts; None overall."""
        if self.grouping_id == HumanSet.BY_STEP:
            return self.step_number
        if self.grouping_id == HumanSet.BY_DAY:
            return self.day
        return self.provider


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
    human: Iterable[HumanRow],
    *,
    zone: ZoneInfo,
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
    by_day: defaultdict[date, Tally] = defaultdict(Tally)
    for total in totals:
        by_day[total.day].add(total.event_type, total.total)
    people: defaultdict[tuple[int, int | date | str | None], dict[str, int]] = defaultdict(dict)
    for measured in human:
        people[(measured.grouping_id, measured.bucket)][measured.measure] = measured.enrollments
    overall_human = _human(people[(HumanSet.OVERALL, None)])
    email, linkedin = by_channel["email"], by_channel["linkedin"]
    return Performance(
        instance_id=instance_id,
        from_=period.start,
        to=period.end,
        tz=zone.key,
        enrolled=enrolled,
        totals=overall.totals_for(ALL_TYPES),
        unique=overall.unique_for(ALL_TYPES),
        reach=Reach(
            email=overall_human.email_reach,
            linkedin=linkedin.unique.get("connection_requested", 0),
        ),
        rates=_rates(email, linkedin, overall_human),
        rate_definitions=RATE_DEFINITIONS,
        human=overall_human,
        by_channel=[
            ChannelCounts(
                channel=channel,
                totals=by_channel[channel].totals_for(CHANNEL_TYPES[channel]),
                unique=by_channel[channel].unique_for(CHANNEL_TYPES[channel]),
                rates=_rates(email, None, overall_human)
                if channel == "email"
                else _rates(None, linkedin, None),
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
                    by_provider_channel[(provider, "linkedin")],
                    _human(people[(HumanSet.BY_PROVIDER, provider)]),
                ),
            )
            for provider in PROVIDERS
        ],
        by_step=[
            _step(channel, step, by_step[(channel, step)], people[(HumanSet.BY_STEP, step)])
            for channel, step in sorted(by_step, key=_step_order)
        ],
        daily=[
            DayTotals(
                day=day,
                totals=by_day[day].totals_for(ALL_TYPES),
                human=_human(people[(HumanSet.BY_DAY, day)]),
            )
            for day in _days(period, set(by_day), zone)
        ],
    )


def _step(channel: Channel, step: int | None, tally: Tally, people: dict[str, int]) -> StepCounts:
    """One step's funnel; an e-mail step's rates are over the step's own e-mail reach."""
    human = _human(people) if channel == "email" else None
    return StepCounts(
        channel=channel,
        step_number=step,
        totals=tally.totals_for(CHANNEL_TYPES[channel]),
        unique=tally.unique_for(CHANNEL_TYPES[channel]),
        rates=_rates(tally, None, human) if channel == "email" else _rates(None, tally, None),
        human=human,
    )


def _human(counts: dict[str, int]) -> HumanEngagement:
    """Human opens and clicks over the e-mail reach they were counted in."""
    reach = counts.get("reach", 0)
    opened, clicked = counts.get("opened", 0), counts.get("clicked", 0)
    return HumanEngagement(
        unique=HumanUnique(opened=opened, clicked=clicked),
        email_reach=reach,
        human_open_rate=_ratio(opened, reach),
        human_click_rate=_ratio(clicked, reach),
    )


def _rates(email: Tally | None, linkedin: Tally | None, human: HumanEngagement | None) -> Rates:
    """Each rate over its channel's reach (the e-mail reach is `human.email_reach`).

    A channel not given has no rates (null).
    """

    def rate(name: str) -> float | None:
        channel, event_type, _meaning = RATES[name]
        if channel == "email":
            if email is None or human is None:
                return None
            return _ratio(email.unique.get(event_type, 0), human.email_reach)
        if linkedin is None:
            return None
        return _ratio(
            linkedin.unique.get(event_type, 0), linkedin.unique.get("connection_requested", 0)
        )

    return Rates(
        **{name: rate(name) for name in RATES},
        human_open_rate=None if human is None else human.human_open_rate,
        human_click_rate=None if human is None else human.human_click_rate,
    )


def _filled(counts: dict[str, int], types: tuple[str, ...]) -> dict[str, int]:
    return {t: counts.get(t, 0) for t in types}


def _ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


def _step_order(key: tuple[Channel, int | None]) -> tuple[str, bool, int]:
    channel, step = key
    return channel, step is None, step or 0


def _days(period: reads.TimeRange, seen: set[date], zone: ZoneInfo) -> list[date]:
    """Every day (in `zone`) of the range; an open side ends at the first or last event's day."""
    try:
        first = period.start.astimezone(zone).date() if period.start else min(seen, default=None)
        if period.end is None:
            last = max(seen, default=None)
        elif period.end > _FIRST_MOMENT:
            last = (period.end - _TICK).astimezone(zone).date()
        else:  # `to` at the first moment there is: nothing lies before it
            return []
    except OverflowError as exc:  # year 1 or 9999 moved into the zone
        raise BadRequest(
            "`from` or `to` falls outside the calendar in that time zone", field="tz"
        ) from exc
    if first is None or last is None or first > last:
        return []
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(
            f"the daily series would span more than {MAX_DAYS} days; narrow from/to", field="from"
        )
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
