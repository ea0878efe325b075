"""Runs, events, external mappings and replay."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from services.control import mappings as mapping_api
from services.control import resend
from services.control.auth import actor_of
from services.control.console.pages import PREFIX, ctx_of, flash, redirect, render
from services.control.console.state import JOBS
from services.control.errors import ApiError, validation_error
from services.control.mappings import MappingView
from services.control.params import decode_cursor, encode_cursor
from services.replay.options import ReplayInputError, ReplayOptions, parse_time, validate
from services.replay.runner import Replayer
from shared.contracts import EventType, ExternalSystem, RunStatus
from shared.logging import get_logger
from shared.store import EventQuery, RunQuery

log = get_logger(__name__)
PAGE = 50
DRY_RUN_ROWS = 500  # bills listed by a dry run in the browser; the summary counts them all


class DryRunLines(io.StringIO):
    """The replayer's JSON lines, keeping the first DRY_RUN_ROWS plans and the summary
    (a dry run over millions of bills must not fill the control plane's memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.plans: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if not line.strip():
                continue
            if line.startswith('{"summary"'):
                self.summary = json.loads(line)["summary"]
            elif len(self.plans) < DRY_RUN_ROWS:
                self.plans.append(json.loads(line))
        return len(text)


def _time(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    from services.control.params import timestamp

    return timestamp(raw, name)


async def runs_list(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    q = request.query
    status = q.get("status", "")
    statuses = [RunStatus(status)] if status in RunStatus.__members__.values() else []
    query = RunQuery(
        entity_id=q.get("entityId") or None,
        integration_config_id=q.get("integrationConfigId") or None,
        statuses=statuses,
        dt_from=_time(q.get("from"), "from"),
        dt_to=_time(q.get("to"), "to"),
        limit=PAGE,
        after=decode_cursor(request),
    )
    page = await ctx.store.list_runs(query)
    token = encode_cursor(page.next_after)
    filters = {k: v for k, v in q.items() if k != "nextToken" and v}
    return render(
        request,
        "runs.html",
        {
            "title": "Integration runs",
            "runs": page.items,
            "next_query": {**filters, "nextToken": token} if token else None,
            "filters": q,
            "configs": ctx.configs.all(),
            "names": {c.id: c.name or c.id for c in ctx.configs.all()},
            "statuses": [s.value for s in RunStatus],
        },
    )


async def run_detail(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    stored = await ctx.store.get_run(request.match_info["id"])
    if stored is None:
        raise ApiError(
            404, "not_found", f"integration run {request.match_info['id']!r} does not exist"
        )
    run = stored.run
    history = await ctx.store.list_runs(
        RunQuery(entity_id=run.entity_id, integration_config_id=run.integration_config_id, limit=50)
    )
    config = ctx.configs.get(run.integration_config_id)
    return render(
        request,
        "run_detail.html",
        {
            "title": f"Run {run.id}",
            "stored": stored,
            "run": run,
            "history": history.items,
            "config": config,
        },
    )


async def run_resend(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    stored = await ctx.store.get_run(request.match_info["id"])
    if stored is None:
        raise ApiError(
            404, "not_found", f"integration run {request.match_info['id']!r} does not exist"
        )
    resend._require_enabled(ctx, stored.run.integration_config_id)
    result = await resend._resend(ctx, stored.run)
    flash(
        request,
        f"Bill {result['entityId']} resent (replay {result['replayId']}); a new run appears "
        "here when the sink has delivered it.",
    )
    raise redirect(f"{PREFIX}/runs/{stored.run.id}")


# ---- events -----------------------------------------------------------------------------

RECOVERY = [
    "Read the errors that led here: the configuration's events and failed runs.",
    "Fix the cause: rotate or reconnect the credential, add the missing external mapping, "
    "or correct the configuration.",
    "Enable the configuration again (this resets the error count).",
    "Resend what failed meanwhile: a run's Resend button, or "
    "`billsync resend --config ID --since T`.",
]


async def events_list(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    q = request.query
    event_type = q.get("eventType") or None
    if event_type is not None and event_type not in {e.value for e in EventType}:
        raise validation_error("eventType must be one of " + ", ".join(e.value for e in EventType))
    actioned_raw = q.get("actioned", "false")
    actioned = {"true": True, "false": False}.get(actioned_raw)
    page = await ctx.store.list_events(
        EventQuery(
            event_type=event_type,
            integration_config_id=q.get("integrationConfigId") or None,
            actioned=actioned,
            limit=PAGE,
            after=decode_cursor(request),
        )
    )
    token = encode_cursor(page.next_after)
    filters = {k: v for k, v in q.items() if k != "nextToken"}
    return render(
        request,
        "events.html",
        {
            "title": "Integration events",
            "events": page.items,
            "filters": {"actioned": actioned_raw, **q},
            "next_query": {**filters, "nextToken": token} if token else None,
            "configs": ctx.configs.all(),
            "event_types": [e.value for e in EventType],
            "disabled_type": EventType.DISABLED.value,
            "recovery": RECOVERY,
        },
    )


async def event_actioned(request: web.Request) -> web.Response:
    event = await ctx_of(request).store.mark_event_actioned(request.match_info["id"])
    if event is None:
        raise ApiError(
            404, "not_found", f"integration event {request.match_info['id']!r} does not exist"
        )
    flash(request, f"Event {event.event.id} marked actioned.")
    form = await request.post()
    back = str(form.get("back", ""))
    raise redirect(back if back.startswith(PREFIX + "/") else f"{PREFIX}/events")


# ---- external mappings -------------------------------------------------------------------

_LOOKUP = (
    "externalSystem",
    "m3terEntity",
    "m3terId",
    "externalTable",
    "externalId",
    "integrationConfigId",
)


async def mappings_list(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    wanted = {mapping_api._FILTERS[k]: v for k, v in request.query.items() if k in _LOOKUP and v}
    found = [m for m in ctx.mappings.all() if mapping_api._matches(m, wanted)]
    return render(
        request,
        "mappings.html",
        {
            "title": "External mappings",
            "mappings": [MappingView.of(m) for m in found[:500]],
            "total": len(found),
            "filters": request.query,
            "systems": [s.value for s in ExternalSystem],
            "configs": ctx.configs.all(),
        },
    )


def _mapping_body(form: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        k: str(form.get(k, "")).strip()
        for k in ("externalSystem", "externalTable", "externalId", "m3terEntity", "m3terId")
    }
    parent = str(form.get("integrationConfigId", "")).strip()
    body["integrationConfigId"] = parent or None
    version = str(form.get("version", ""))
    if version.isdigit():
        body["version"] = int(version)
    return body


async def mapping_form(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    mapping_id = request.match_info.get("id")
    values = (
        MappingView.of(ctx.mappings.require(mapping_id))
        if mapping_id
        else {"m3terEntity": "Account", "externalTable": "Customer", "externalSystem": "Stripe"}
    )
    return _mapping_page(request, values, mapping_id, None)


def _mapping_page(
    request: web.Request,
    values: dict[str, Any],
    mapping_id: str | None,
    error: ApiError | None,
) -> web.Response:
    ctx = ctx_of(request)
    errors: dict[str, list[str]] = {}
    for detail in error.details if error else []:
        errors.setdefault(str(detail.get("field")), []).append(str(detail.get("message")))
    return render(
        request,
        "mapping_form.html",
        {
            "title": "Edit external mapping" if mapping_id else "New external mapping",
            "mapping_id": mapping_id,
            "values": values,
            "errors": errors,
            "message": error.message if error else None,
            "systems": [s.value for s in ExternalSystem],
            "configs": ctx.configs.all(),
        },
        status=400 if error else 200,
    )


async def mapping_save(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    mapping_id = request.match_info.get("id")
    body = _mapping_body(await request.post())
    try:
        parsed = mapping_api._checked(request, body)
        mapping = await ctx.mappings.save(parsed, mapping_id, actor_of(request))
    except ApiError as exc:
        if exc.status not in (400, 409):
            raise
        return _mapping_page(request, body, mapping_id, exc)
    flash(request, f"External mapping {mapping.id} saved.")
    raise redirect(f"{PREFIX}/mappings")


async def mapping_delete(request: web.Request) -> web.Response:
    mapping = await ctx_of(request).mappings.delete(request.match_info["id"], actor_of(request))
    flash(request, f"External mapping {mapping.id} deleted.", "warn")
    raise redirect(f"{PREFIX}/mappings")


# ---- replay ------------------------------------------------------------------------------


def _replay_options(form: Any, dry_run: bool) -> ReplayOptions:
    mode = str(form.get("mode", "time"))
    topic = "bill_approved" if form.get("topic") == "bill-approved" else "bill_generated"

    def number(name: str) -> int | None:
        raw = str(form.get(name, "")).strip()
        if not raw:
            return None
        if not raw.lstrip("-").isdigit():
            raise ReplayInputError(f"{name.replace('_', ' ')} must be a whole number, got {raw!r}")
        return int(raw)

    def moment(name: str, flag: str) -> int | None:
        raw = str(form.get(name, "")).strip()
        return parse_time(raw, flag) if raw else None

    accounts = frozenset(p for p in str(form.get("accounts", "")).replace(",", " ").split() if p)
    opts = ReplayOptions(
        topic_field=topic,
        from_offset=number("from_offset") if mode == "offset" else None,
        to_offset=number("to_offset") if mode == "offset" else None,
        from_time_ms=moment("from_time", "from time") if mode == "time" else None,
        to_time_ms=moment("to_time", "to time") if mode == "time" else None,
        partition=number("partition"),
        accounts=accounts,
        config_ids=tuple(dict.fromkeys(str(c) for c in form.getall("config", []))),
        dry_run=dry_run,
        json=True,
    )
    validate(opts)
    return opts


def _replay_context(request: web.Request, form: Any) -> dict[str, Any]:
    return {
        "title": "Replay",
        "form": form,
        "chosen_configs": set(form.getall("config", [])) if hasattr(form, "getall") else set(),
        "configs": ctx_of(request).configs.all(),
        "jobs": list(request.app[JOBS].jobs.values()),
        "plans": None,
        "summary": None,
        "error": None,
    }


async def replay_page(request: web.Request) -> web.Response:
    return render(request, "replay.html", _replay_context(request, request.query))


async def replay_dry_run(request: web.Request) -> web.Response:
    form = await request.post()
    context = _replay_context(request, form)
    out = DryRunLines()
    try:
        opts = _replay_options(form, dry_run=True)
        await Replayer(ctx_of(request).settings, opts, out=out, err=io.StringIO()).run()
    except ReplayInputError as exc:
        context["error"] = str(exc)
        return render(request, "replay.html", context, status=400)
    context.update({"plans": out.plans, "summary": out.summary, "row_limit": DRY_RUN_ROWS})
    return render(request, "replay.html", context)


async def replay_run(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        opts = _replay_options(form, dry_run=False)
    except ReplayInputError as exc:
        context = _replay_context(request, form)
        context["error"] = str(exc)
        return render(request, "replay.html", context, status=400)
    replayer = Replayer(
        ctx_of(request).settings, opts, out=io.StringIO(), err=io.StringIO(), progress_seconds=0.5
    )
    job = request.app[JOBS].start(replayer, actor_of(request))
    log.info(
        "console_replay_started",
        job_id=job.id,
        replay_id=replayer.stats.replay_id,
        topic=replayer.topic,
        configs=list(opts.config_ids),
        actor=actor_of(request),
    )
    raise redirect(f"{PREFIX}/replay/jobs/{job.id}")


async def replay_job(request: web.Request) -> web.Response:
    job = request.app[JOBS].jobs.get(request.match_info["id"])
    if job is None:
        raise ApiError(404, "not_found", f"replay job {request.match_info['id']!r} is not known")
    template = "_replay_job.html" if request.headers.get("HX-Request") else "replay_job.html"
    now = datetime.now(UTC)
    return render(request, template, {"title": "Replay progress", "job": job, "now": now})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/runs", runs_list, name="runs"),
        web.get("/runs/{id}", run_detail, name="run"),
        web.post("/runs/{id}/resend", run_resend, name="resend"),
        web.get("/events", events_list, name="events"),
        web.post("/events/{id}/actioned", event_actioned, name="actioned"),
        web.get("/mappings", mappings_list, name="mappings"),
        web.get("/mappings/new", mapping_form, name="mapping_new"),
        web.post("/mappings/new", mapping_save, name="mapping_create"),
        web.get("/mappings/{id}/edit", mapping_form, name="mapping_edit"),
        web.post("/mappings/{id}/edit", mapping_save, name="mapping_update"),
        web.post("/mappings/{id}/delete", mapping_delete, name="mapping_delete"),
        web.get("/replay", replay_page, name="replay"),
        web.post("/replay/dry-run", replay_dry_run, name="replay_dry_run"),
        web.post("/replay/run", replay_run, name="replay_run"),
        web.get("/replay/jobs/{id}", replay_job, name="replay_job"),
    ]
