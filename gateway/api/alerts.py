"""`GET /api/alerts`: campaigns whose providers went silent (contract §8).

A provider that stops posting (a webhook removed, a secret rotated on one side
only, a campaign paused in lemlist) looks like a quiet day unless someone
notices. Each active instance says how long silence is normal
(`settings.silence_after_hours`, default 24); past that, each provider it uses
that sent no event since is listed, with since when.
"""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from gateway.api.deps import ReadDb
from gateway.api.schemas import AlertList, SilentProvider, problems
from gateway.db import reads


@get(
    "/alerts",
    summary="Active instances whose providers have sent nothing for too long",
    description=(
        "One item per active instance and provider it uses (a campaign key, or"
        " email_provider / linkedin_provider naming it) with no event for longer than the"
        " instance's settings.silence_after_hours (default 24); longest silence first."
    ),
    responses=problems(400),
)
async def list_alerts(db: NamedDependency[ReadDb]) -> AlertList:
    async with db.connection() as conn:
        rows = await reads.silent_instances(conn)
    return AlertList(items=[SilentProvider(**row) for row in rows])
