"""Configurations: the list, the Create Integration wizard, details, editing, enabling,
connecting a credential (chosen, or through OAuth), the live filter check and previews."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from services.control import connections, oauth
from services.control.auth import actor_of
from services.control.configs_api import attach, connect
from services.control.console import data, forms
from services.control.console.pages import PREFIX, ctx_of, flash, redirect, render
from services.control.console.state import BOOK
from services.control.context import ControlContext
from services.control.errors import ApiError, validation_error
from services.control.validation import credential_problem, credential_type_for, filter_details
from shared.contracts import Destination, IntegrationConfig
from shared.store import RunQuery


def _destination(raw: str | None) -> Destination | None:
    try:
        return Destination(raw) if raw else None
    except ValueError:
        return None


async def _run_summary(ctx: ControlContext, config_id: str) -> dict[str, Any]:
    page = await ctx.store.list_runs(RunQuery(integration_config_id=config_id, limit=11))
    successive = 0
    for stored in page.items:  # newest first: errors since the last success
        if not stored.run.status.is_error:
            break
        successive += 1
    last = page.items[0].run if page.items else None
    return {"last": last, "successive": successive, "more": successive > 10}


async def configs_list(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    rows = []
    for config in ctx.configs.all():
        rows.append(
            {
                "config": config,
                "info": forms.DESTINATIONS[config.destination],
                "connection": await connections.status(ctx, config),
                **await _run_summary(ctx, config.id),
            }
        )
    return render(request, "configs.html", {"rows": rows, "title": "Configurations"})


async def _set_enabled(request: web.Request, enabled: bool) -> web.Response:
    ctx = ctx_of(request)
    config_id = request.match_info["id"]

    def toggle(existing: IntegrationConfig) -> IntegrationConfig | None:
        if existing.enabled is enabled:
            return None
        return existing.model_copy(update={"enabled": enabled})

    action = "enable" if enabled else "disable"
    await ctx.configs.modify(config_id, toggle, action, actor_of(request), reason="console")
    flash(request, f"{config_id} {'enabled' if enabled else 'disabled'}.")
    form = await request.post()
    back = str(form.get("back", ""))
    raise redirect(back if back.startswith(PREFIX + "/") else f"{PREFIX}/configs")


async def enable(request: web.Request) -> web.Response:
    return await _set_enabled(request, True)


async def disable(request: web.Request) -> web.Response:
    return await _set_enabled(request, False)


# ---- the wizard -------------------------------------------------------------------------


def _form_context(
    request: web.Request,
    destination: Destination,
    values: dict[str, Any],
    errors: dict[str, list[str]] | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    book = request.app[BOOK]
    return {
        "destination": destination,
        "info": forms.DESTINATIONS[destination],
        "built": data.sink_built(destination),
        "settings": forms.settings_for(destination),
        "values": values,
        "errors": errors or {},
        "message": message,
        "helptext": forms.HELP,
        "account_options": [(a.id, a.account_name or "") for a in book.all()],
        "accounts_ready": book.ready,
        "user_options": [
            (u.id, f"{u.name} <{u.email}>" if u.name else u.email)
            for u in sorted(ctx.users.users.values(), key=lambda u: u.id)
        ],
        "line_item_types": forms.LINE_ITEM_TYPES,
        "sorts": forms.SORTS,
    }


async def wizard(request: web.Request) -> web.Response:
    entity = request.query.get("entityType")
    destination = _destination(request.query.get("destination"))
    stage = 1 if entity != "Bill" else (2 if destination is None else 3)
    context: dict[str, Any] = {
        "title": "Create Integration",
        "stage": stage,
        "entity": entity,
        "choices": [(info, data.sink_built(d)) for d, info in forms.DESTINATIONS.items()],
    }
    if destination is not None and stage == 3:
        context.update(_form_context(request, destination, forms.defaults(destination)))
    return render(request, "wizard.html", context)


def _parsed(
    request: web.Request, body: dict[str, Any], problems: list[dict[str, Any]]
) -> IntegrationConfig:
    """The API's own validation; form-only problems are reported with it, all at once."""
    from services.control.validation import parse_checked

    ctx = ctx_of(request)
    try:
        config = parse_checked(body, ctx.credentials.table.data, ctx.users)
    except ApiError as exc:
        if not problems:
            raise
        details = problems + exc.details
        raise validation_error(
            f"the configuration has {len(details)} problem(s); see details", details
        ) from None
    if problems:
        raise validation_error(
            f"the configuration has {len(problems)} problem(s); see details", problems
        )
    return config


async def create(request: web.Request) -> web.Response:
    destination = _destination(request.query.get("destination"))
    if destination is None:
        raise validation_error("choose a destination first")
    form = await request.post()
    body, problems = forms.body_from_form(form, destination)
    body["id"] = f"cfg_{uuid.uuid4().hex[:16]}"
    body["version"] = 1
    try:
        config = _parsed(request, body, problems)
        created = await ctx_of(request).configs.create(config, actor_of(request))
    except ApiError as exc:
        if exc.status != 400:
            raise
        return _form_again(request, destination, body, exc, "wizard.html", {"stage": 3})
    flash(request, f"Integration {created.name or created.id} created. Connect it below.")
    raise redirect(f"{PREFIX}/configs/{created.id}")


def _form_again(
    request: web.Request,
    destination: Destination,
    body: dict[str, Any],
    exc: ApiError,
    template: str,
    extra: dict[str, Any],
) -> web.Response:
    values = forms.defaults(destination)
    values.update({k: v for k, v in body.items() if k not in ("entityConfig", "destinationConfig")})
    values["entityConfig"].update(body.get("entityConfig", {}))
    values["entityConfig"]["accountFilter"] = body["entityConfig"].get("accountFilter") or ""
    values["destinationConfig"].update(body.get("destinationConfig", {}))
    context = _form_context(
        request, destination, values, forms.errors_by_field(exc.details), exc.message
    )
    context.update({"title": "Create Integration", "entity": "Bill", "choices": [], **extra})
    return render(request, template, context, status=400)


# ---- details, editing, credentials ------------------------------------------------------


async def detail(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    config = ctx.configs.require(request.match_info["id"])
    if request.query.get("connected") == "1":
        flash(request, "Connected through OAuth.")
    wanted = credential_type_for(config.destination)
    credentials = [ctx.credentials.view(c) for c in ctx.credentials.all() if c.type == wanted]
    current = ctx.credentials.get(config.integration_credentials_id or "")
    recent = await ctx.store.list_runs(RunQuery(integration_config_id=config.id, limit=50))
    provider_checked = next(
        (r.run for r in recent.items if r.run.status.value in ("COMPLETE", "AUTH_FAILED")), None
    )
    changes = await ctx.store.list_config_changes(config.id, limit=10)
    return render(
        request,
        "config_detail.html",
        {
            "title": config.name or config.id,
            "config": config,
            "info": forms.DESTINATIONS[config.destination],
            "built": data.sink_built(config.destination),
            "settings": forms.settings_for(config.destination),
            "values": forms.values_of(config),
            "connection": await connections.status(ctx, config),
            "credential": ctx.credentials.view(current) if current else None,
            "credentials": credentials,
            "provider_checked": provider_checked,
            "summary": await _run_summary(ctx, config.id),
            "changes": changes,
            "oauth_ready": _oauth_ready(ctx, forms.DESTINATIONS[config.destination].oauth),
            "helptext": forms.HELP,
        },
    )


def _oauth_ready(ctx: ControlContext, provider: str | None) -> bool:
    return provider is not None and ctx.oauth.configured(provider)


async def edit(request: web.Request) -> web.Response:
    config = ctx_of(request).configs.require(request.match_info["id"])
    context = _form_context(request, config.destination, forms.values_of(config))
    context.update({"title": f"Edit {config.name or config.id}", "config": config})
    return render(request, "config_edit.html", context)


async def edit_post(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    current = ctx.configs.require(request.match_info["id"])
    form = await request.post()
    body, problems = forms.body_from_form(form, current.destination)
    raw_version = str(form.get("version", ""))
    version = int(raw_version) if raw_version.isdigit() else None
    # As PUT does: enabled and the credential have their own controls and stay as they are.
    body.update(
        {
            "id": current.id,
            "version": current.version,
            "enabled": current.enabled,
            "integrationCredentialsId": current.integration_credentials_id,
        }
    )
    try:
        new = _parsed(request, body, problems)
    except ApiError as exc:
        if exc.status != 400:
            raise
        context_extra = {"config": current, "title": f"Edit {current.name or current.id}"}
        return _form_again(
            request, current.destination, body, exc, "config_edit.html", context_extra
        )

    def replace(existing: IntegrationConfig) -> IntegrationConfig | None:
        same = new.model_copy(update={"version": existing.version}) == existing
        return None if same else new

    _, changed = await ctx.configs.modify(
        current.id, replace, "update", actor_of(request), expected_version=version
    )
    flash(request, "Saved." if changed else "Nothing changed.")
    raise redirect(f"{PREFIX}/configs/{current.id}")


async def attach_post(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    config = ctx.configs.require(request.match_info["id"])
    form = await request.post()
    cred_id = str(form.get("integrationCredentialsId", ""))
    if not cred_id:
        raise validation_error("integrationCredentialsId is required")
    problem = credential_problem(config.destination, cred_id, ctx.credentials.get(cred_id))
    if problem:
        raise validation_error(problem, [{"field": "integrationCredentialsId", "message": problem}])
    await connect(ctx, config, cred_id, actor_of(request))
    flash(request, f"Connected with credential {cred_id}.")
    raise redirect(f"{PREFIX}/configs/{config.id}")


async def disconnect(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    config_id = request.match_info["id"]
    await attach(ctx, config_id, None, actor_of(request))
    flash(request, "Disconnected: the integration has no credential now.", "warn")
    raise redirect(f"{PREFIX}/configs/{config_id}")


async def oauth_start(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    config = ctx.configs.require(request.match_info["id"])
    provider = forms.DESTINATIONS[config.destination].oauth
    if provider is None:
        raise validation_error(
            f"{config.destination.value} has no OAuth connection: choose a credential"
        )
    raise web.HTTPSeeOther(await oauth.issue_begin_link(ctx, provider, config.id))


async def oauth_done(request: web.Request) -> web.Response:
    """Where the OAuth callback sends the browser. It arrives from the provider's site, so
    the SameSite=Strict session cookie is not sent: this page needs no session and moves
    on to the configuration with a same-site navigation, which carries the cookie."""
    config_id = request.query.get("integrationConfigId", "")
    if not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,200}", config_id):
        raise redirect(f"{PREFIX}/configs")
    connected = request.query.get("status") == "CONNECTED"
    target = f"{PREFIX}/configs/{config_id}" + ("?connected=1" if connected else "")
    return render(request, "oauth_done.html", {"title": "Connected", "target": target})


# ---- live checks and previews ------------------------------------------------------------


async def filter_check(request: web.Request) -> web.Response:
    expression = request.query.get("entityConfig.accountFilter", "")
    details = filter_details(expression) if expression.strip() else []
    book = request.app[BOOK]
    matching = None
    if not details and expression.strip():
        from shared.filters import parse_filter
        from shared.routing.rules import account_view

        compiled = parse_filter(expression)
        accounts = book.all()
        matching = (sum(compiled.matches(account_view(a)) for a in accounts), len(accounts))
    return render(
        request,
        "_filter_check.html",
        {"expression": expression, "details": details, "matching": matching},
    )


async def _preview(
    request: web.Request,
    config: IntegrationConfig,
    bill_id: str,
    hidden: list[tuple[str, str]] | None = None,
) -> web.Response:
    ctx = ctx_of(request)
    book = request.app[BOOK]
    matches = data.match_accounts(config, book.all())
    bills = await data.recent_bills(ctx.settings)
    taken = {m.account.id for m in matches if m.matches}
    chosen = next((b for b in bills if b.id == bill_id), None)
    if chosen is None and bill_id == "":
        chosen = next((b for b in bills if b.account_id in taken), None)
    payload = None
    if chosen is not None:
        payload = data.preview_payload(
            config, chosen, book.get(chosen.account_id), ctx.mappings.all()
        )
    return render(
        request,
        "preview.html",
        {
            "title": f"Preview {config.name or config.id}",
            "config": config,
            "saved": hidden is None,
            "hidden": hidden or [],
            "info": forms.DESTINATIONS[config.destination],
            "matches": matches,
            "taken": len(taken),
            "accounts_ready": book.ready,
            "bills": bills[:200],
            "chosen": chosen,
            "payload": payload,
            "bill_id": bill_id,
        },
    )


async def preview_saved(request: web.Request) -> web.Response:
    config = ctx_of(request).configs.require(request.match_info["id"])
    return await _preview(request, config, request.query.get("bill", ""))


async def preview_draft(request: web.Request) -> web.Response:
    """The wizard's (or the edit form's) unsaved configuration."""
    destination = _destination(request.query.get("destination"))
    if destination is None:
        raise validation_error("choose a destination first")
    form = await request.post()
    body, problems = forms.body_from_form(form, destination)
    body.update({"id": "draft", "version": 1, "integrationCredentialsId": None})
    config = _parsed(request, body, problems)
    hidden = [(k, str(v)) for k, v in form.items() if k not in ("_csrf", "bill")]
    return await _preview(request, config, str(form.get("bill", "")), hidden)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/configs", configs_list, name="configs"),
        web.get("/configs/new", wizard, name="wizard"),
        web.post("/configs/new", create, name="create"),
        web.post("/configs/preview", preview_draft, name="preview_draft"),
        web.get("/configs/{id}", detail, name="detail"),
        web.get("/configs/{id}/edit", edit, name="edit"),
        web.post("/configs/{id}/edit", edit_post, name="edit_post"),
        web.post("/configs/{id}/enable", enable, name="enable"),
        web.post("/configs/{id}/disable", disable, name="disable"),
        web.post("/configs/{id}/credential", attach_post, name="attach"),
        web.post("/configs/{id}/disconnect", disconnect, name="disconnect"),
        web.post("/configs/{id}/oauth", oauth_start, name="oauth_start"),
        web.get("/configs/{id}/preview", preview_saved, name="preview"),
        web.get("/oauth/done", oauth_done, name="oauth_done"),
        web.get("/filter-check", filter_check, name="filter_check"),
    ]
