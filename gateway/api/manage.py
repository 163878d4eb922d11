"""Campaign management: templates with their sequences, instances and their mappings.

Every write needs an API key (the router's guard) and is one transaction
(`ManageDb.write`); counters are left to the schema's triggers. When what an
instance maps changes (created with campaign keys, `provider_config`
changed, activated), the events that arrived unmatched for its keys are
attached after the change has committed, by reprocessing their deliveries
(`ManageDb.attach`), and the answer says how many.

Two live (active or paused) instances never map the same campaign key: the
webhooks of one lemlist campaign would otherwise split between them by
ingestion's tie-break. Drafts may share keys, so that a successor can be
prepared while its predecessor runs; activating one is then a 409.
"""

from __future__ import annotations

import re
from typing import Any, Final
from uuid import UUID

import msgspec
from asyncpg import Record
from litestar import Response, delete, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET

from gateway.api.auth import API_KEY
from gateway.api.campaigns import instance_from_row
from gateway.api.deps import ATTACH_MAX_DELIVERIES, ManageDb
from gateway.api.schemas import (
    Attach,
    InstanceIn,
    InstancePatch,
    InstanceWritten,
    ProviderKeys,
    TemplateDetail,
    TemplateIn,
    problems,
)
from gateway.db import campaigns, reads
from gateway.db.pool import Connection
from gateway.errors import BadRequest, Conflict, NotFound

LIVE: Final = frozenset({"active", "paused"})
#: Where each status may go next, besides `failed`, which any status may go to.
NEXT_STATUS: Final[dict[str, frozenset[str]]] = {
    "draft": frozenset({"active"}),
    "active": frozenset({"paused", "completed"}),
    "paused": frozenset({"active", "completed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}


@post(
    "/campaigns/templates",
    summary="Create a template with its email and LinkedIn sequences",
    responses=problems(400, 401),
    security=API_KEY,
)
async def create_template(
    writer: NamedDependency[ManageDb], data: JSONBody[TemplateIn]
) -> Response[TemplateDetail]:
    row, email, linkedin = _template_rows(data)

    async def work(conn: Connection) -> Record | None:
        template_id = await campaigns.insert_template(conn, row)
        await campaigns.replace_sequences(conn, template_id, email, linkedin)
        return await reads.get_template(conn, template_id)

    template = _template_detail(await writer.write(work))
    return Response(
        template,
        status_code=201,
        headers={"Location": f"/api/campaigns/templates/{template.id}"},
    )


@put(
    "/campaigns/templates/{template_id:uuid}",
    summary="Replace a template and its sequences",
    description="Everything is replaced in one transaction; a step kept (same step number and"
    " A/B variant) keeps its id, a step not listed is deleted.",
    responses=problems(400, 401, 404),
    security=API_KEY,
)
async def replace_template(
    writer: NamedDependency[ManageDb], template_id: FromPath[UUID], data: JSONBody[TemplateIn]
) -> TemplateDetail:
    row, email, linkedin = _template_rows(data)

    async def work(conn: Connection) -> Record | None:
        if not await campaigns.update_template(conn, template_id, row):
            raise NotFound(f"no campaign template {template_id}")
        await campaigns.replace_sequences(conn, template_id, email, linkedin)
        return await reads.get_template(conn, template_id)

    return _template_detail(await writer.write(work))


@delete(
    "/campaigns/templates/{template_id:uuid}",
    summary="Delete a template, its sequences, instances, enrollments and events",
    description="Refused (409) while an instance of the template is active or paused, since"
    " its events would go with it; `?force=true` deletes anyway.",
    responses=problems(400, 401, 404, 409),
    security=API_KEY,
)
async def delete_template(
    writer: NamedDependency[ManageDb], template_id: FromPath[UUID], force: FromQuery[bool] = False
) -> None:
    async def work(conn: Connection) -> None:
        if not await campaigns.lock_template(conn, template_id):
            raise NotFound(f"no campaign template {template_id}")
        instances = await campaigns.lock_template_instances(conn, template_id)
        running = [f"{i['name']!r} ({i['status']})" for i in instances if i["status"] in LIVE]
        if running and not force:
            raise Conflict(
                f"the template has running instances: {', '.join(running)}; complete them"
                " first, or delete with ?force=true, which deletes their enrollments and events"
            )
        await campaigns.delete_template(conn, template_id)

    await writer.write(work)


@post(
    "/campaigns/instances",
    summary="Create an instance of a template, mapped to provider campaigns",
    description="`provider_config` carries the provider keys that attach webhooks"
    " (`lemlist_campaign_id`, `postmark_tag`, `phantombuster_agent_id(s)`). Events that"
    " arrived unmatched for those keys are attached before the answer (see `attach`).",
    responses=problems(400, 401, 404, 409),
    security=API_KEY,
)
async def create_instance(
    writer: NamedDependency[ManageDb], data: JSONBody[InstanceIn]
) -> Response[InstanceWritten]:
    keys = provider_keys(data.provider_config)

    async def work(conn: Connection) -> UUID:
        if not await campaigns.lock_template_key(conn, data.template_id):
            raise NotFound(f"no campaign template {data.template_id}", field="template_id")
        if data.status in LIVE:
            await _claim_keys(conn, None, keys)
        return await campaigns.insert_instance(
            conn,
            campaigns.InstanceRow(
                data.template_id, data.name, data.status, data.provider_config, data.settings
            ),
        )

    instance_id = await writer.write(work)
    instance = await _written(writer, instance_id, keys)
    return Response(
        instance,
        status_code=201,
        headers={"Location": f"/api/campaigns/instances/{instance_id}"},
    )


@post(
    "/campaigns/instances/{instance_id:uuid}/attach",
    status_code=200,
    summary="Attach the events still unmatched for the instance's campaign keys",
    description="What a mapping change does by itself, for at most"
    f" {ATTACH_MAX_DELIVERIES} deliveries per request: call again while"
    " `attach.remaining` is not 0.",
    responses=problems(400, 401, 404),
    security=API_KEY,
)
async def attach_unmatched(
    writer: NamedDependency[ManageDb], instance_id: FromPath[UUID]
) -> InstanceWritten:
    async with writer.connection() as conn:
        row = await reads.get_instance(conn, instance_id)
    if row is None:
        raise NotFound(f"no campaign instance {instance_id}")
    return await _written(writer, instance_id, provider_keys(row["provider_config"]))


@patch(
    "/campaigns/instances/{instance_id:uuid}",
    summary="Change an instance's status, name, provider_config or settings",
    description="Status moves along draft → active ⇄ paused → completed, and any status may"
    " go to failed; anything else is a 409 saying why. `provider_config` and `settings` are"
    " merged key by key (null removes a key). A new provider applies to contacts enrolled"
    " from now on; existing enrollments keep the providers they were enrolled with.",
    responses=problems(400, 401, 404, 409),
    security=API_KEY,
)
async def update_instance(
    writer: NamedDependency[ManageDb], instance_id: FromPath[UUID], data: JSONBody[InstancePatch]
) -> InstanceWritten:
    if all(getattr(data, name) is UNSET for name in data.__struct_fields__):
        raise BadRequest("nothing to change: give name, status, provider_config or settings")

    async def work(conn: Connection) -> ProviderKeys | None:
        row = await campaigns.lock_instance(conn, instance_id)
        if row is None:
            raise NotFound(f"no campaign instance {instance_id}")
        current: str = row["status"]
        status = current if data.status is UNSET else data.status
        check_transition(current, status)
        config: dict[str, Any] = row["provider_config"]
        if data.provider_config is not UNSET:
            config = merged(config, data.provider_config)
        # A new mapping, or an instance that starts receiving as the active one.
        remapped = config != row["provider_config"] or (status == "active" and current != "active")
        keys = provider_keys(config) if remapped else None
        if keys is not None and status in LIVE:
            await _claim_keys(conn, instance_id, keys)
        settings = row["settings"]
        if data.settings is not UNSET:
            settings = merged(settings, data.settings)
        name = None if data.name is UNSET else data.name
        await campaigns.update_instance(conn, instance_id, name, status, config, settings)
        return keys

    keys = await writer.write(work)
    return await _written(writer, instance_id, keys)


def check_transition(current: str, wanted: str) -> None:
    """Refuse a status change the lifecycle does not allow, saying what it allows."""
    if wanted in (current, "failed") or wanted in NEXT_STATUS[current]:
        return
    allowed = ", ".join(sorted(NEXT_STATUS[current] | {"failed"}))
    raise Conflict(
        f"cannot go from {current} to {wanted}; from {current} an instance can go to: {allowed}",
        field="status",
    )


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`current` with `changes` applied key by key; a null value removes its key."""
    result = {**current, **changes}
    return {key: value for key, value in result.items() if value is not None}


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def provider_keys(config: dict[str, Any]) -> ProviderKeys:
    """The known keys of a provider_config, type-checked; a bad one is a 400 naming it."""
    try:
        return msgspec.convert(config, ProviderKeys)
    except msgspec.ValidationError as exc:
        message = str(exc)
        at = _AT.search(message)
        path = at["path"] if at else ""
        raise BadRequest(
            f"provider_config: {message[: at.start()] if at else message}",
            field=f"provider_config{path}",
        ) from exc


async def _claim_keys(conn: Connection, instance_id: UUID | None, keys: ProviderKeys) -> None:
    """Refuse (409) campaign keys that another live instance maps already."""
    pairs = keys.campaign_keys()
    if not pairs:
        return
    await campaigns.lock_mappings(conn)
    taken = await campaigns.mapping_conflict(conn, instance_id, pairs)
    if taken is not None:
        raise Conflict(
            f"{taken.provider} key {taken.key!r} is mapped already by instance {taken.id}"
            f" ({taken.name!r}), which is live: complete it, or remove the key from its"
            " provider_config, first",
            field="provider_config",
        )


async def _written(
    writer: ManageDb, instance_id: UUID, keys: ProviderKeys | None
) -> InstanceWritten:
    """The instance after a committed write, once unmatched events for `keys` are attached."""
    attach: Attach | None = None
    if keys is not None and keys.campaign_keys():
        by_provider: dict[str, list[str]] = {"lemlist": [], "postmark": [], "phantombuster": []}
        for provider, key in keys.campaign_keys():
            by_provider[provider].append(key)
        attach = await writer.attach(campaigns.CampaignKeys(**by_provider))
    async with writer.connection() as conn:
        row = await reads.get_instance(conn, instance_id)
    if row is None:  # deleted between the write and this read
        raise NotFound(f"no campaign instance {instance_id}")
    instance = instance_from_row(row)
    return InstanceWritten(**msgspec.structs.asdict(instance), attach=attach)


def _template_rows(
    data: JSONBody[TemplateIn],
) -> tuple[campaigns.TemplateRow, list[campaigns.EmailStepRow], list[campaigns.LinkedinStepRow]]:
    """The rows a template body writes, once its sequences are checked as a whole.

    A step (with its A/B variant) listed twice is a 400 naming the second;
    so are LinkedIn steps on an email template and email steps on a LinkedIn one.
    """
    if data.type == "email" and data.linkedin_sequences:
        raise BadRequest("an email template has no LinkedIn steps", field="linkedin_sequences")
    if data.type == "linkedin" and data.email_sequences:
        raise BadRequest("a LinkedIn template has no email steps", field="email_sequences")
    seen_email: dict[tuple[int, str | None], int] = {}
    for i, step in enumerate(data.email_sequences):
        first = seen_email.setdefault((step.step_number, step.a_b_variant), i)
        if first != i:
            raise BadRequest(
                f"email step {step.step_number}"
                + (f" variant {step.a_b_variant}" if step.a_b_variant else "")
                + f" is listed twice (also email_sequences[{first}])",
                field=f"email_sequences[{i}].step_number",
            )
    seen_linkedin: dict[int, int] = {}
    for i, linkedin_step in enumerate(data.linkedin_sequences):
        first = seen_linkedin.setdefault(linkedin_step.step_number, i)
        if first != i:
            raise BadRequest(
                f"LinkedIn step {linkedin_step.step_number} is listed twice"
                f" (also linkedin_sequences[{first}])",
                field=f"linkedin_sequences[{i}].step_number",
            )
    row = campaigns.TemplateRow(
        data.name,
        data.description,
        data.type,
        data.path_type,
        data.settings,
        data.is_active,
        data.created_by,
    )
    email = [
        campaigns.EmailStepRow(
            s.step_number, s.a_b_variant, s.subject, s.body_template, s.delay_hours, s.is_active
        )
        for s in data.email_sequences
    ]
    linkedin = [
        campaigns.LinkedinStepRow(
            s.step_number, s.action_type, s.message_template, s.delay_hours, s.fallback_channel
        )
        for s in data.linkedin_sequences
    ]
    return row, email, linkedin


def _template_detail(row: Record | None) -> TemplateDetail:
    if row is None:  # read in the transaction that wrote it
        raise RuntimeError("a template written just now cannot be read back")
    return msgspec.convert(dict(row), TemplateDetail)
