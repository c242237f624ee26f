"""The console's web server (aiohttp): pages, static files, the live stream (server-sent events), history and
events queries, sign-in and operator actions. Every request is validated: bad input gets a 400 that names the
field; an unexpected error is a 500 with an id that is also logged, and the server keeps running."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from console_module import pages
from console_module.auth import Credentials, Sessions
from console_module.config import ConsoleConfig

log = logging.getLogger("console_module.web")

COOKIE = "console_session"
CSRF_HEADER = "X-CSRF-Token"
KEEPALIVE_S = 15.0
MAX_BODY_BYTES = 4096
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
SECURITY_HEADERS = {
    # everything comes from the console itself: no CDN, no inline script, no framing
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

Invoke = Callable[[str, str, dict[str, Any]], Awaitable[tuple[int, Any]]]


class FieldError(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def problem(status: int, field: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "errors": [{"field": field, "message": message}], **extra},
                             status=status)


# ---------------------------------------------------------------- request models (the fields the CLI's methods take)


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class ImportLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    import_limit_kw: float = Field(ge=0, le=1_000_000, allow_inf_nan=False, description="kW")


class PeakShaving(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class SiteDispatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    power_kw: float = Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False, description="kW, + = discharge")
    duration_s: float = Field(gt=0, le=86_400, allow_inf_nan=False, description="seconds")


@dataclass(frozen=True)
class Action:
    model: type[BaseModel]
    module: Callable[[ConsoleConfig], str]
    method: str
    payload: Callable[[Any, ConsoleConfig], dict[str, Any]]


ACTIONS = {
    "import-limit": Action(ImportLimit, lambda c: c.site_controller_module, "set_import_limit",
                           lambda r, c: {"import_limit_kw": r.import_limit_kw}),
    "peak-shaving": Action(PeakShaving, lambda c: c.site_controller_module, "set_peak_shaving",
                           lambda r, c: {"enabled": r.enabled}),
    "dispatch": Action(SiteDispatch, lambda c: c.controller_module, "dispatch",
                       lambda r, c: {"site_id": c.site_id, "power_kw": r.power_kw, "duration_s": r.duration_s}),
}


def validate(model: type[BaseModel], doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise FieldError(400, "(body)", "the body must be a JSON object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise FieldError(400, field, f"{field}: {first['msg']}") from None


async def read_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise FieldError(413, "(body)", f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise FieldError(413, "(body)", f"the body is larger than {MAX_BODY_BYTES} bytes")
    if request.content_type == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise FieldError(400, "(body)", "the body is not JSON") from None


def _query(request: web.Request, allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        allowed_text = ", ".join(sorted(allowed)) or "none"
        raise FieldError(400, unknown[0], f"unknown query parameter {unknown[0]!r}; allowed: {allowed_text}")
    return {k: v for k, v in request.query.items() if v != ""}


def _number_param(query: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    if name not in query:
        return default
    try:
        value = float(query[name])
    except ValueError:
        raise FieldError(400, name, f"{name} must be a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise FieldError(400, name, f"{name} must be within {low:g}..{high:g}")
    return value


class Broadcaster:
    """Builds the snapshot once per change (at most every push_interval_s) and hands the same bytes to every
    open page."""

    def __init__(self, build: Callable[[], bytes], version: Callable[[], int]) -> None:
        self.build, self.version = build, version
        self.data, self.built_version, self.sequence = b"", -1, 0
        self.changed = asyncio.Condition()

    async def run(self, interval: Callable[[], float]) -> None:
        while True:
            if self.version() != self.built_version:
                self.built_version = self.version()
                self.data = self.build()
                self.sequence += 1
                async with self.changed:
                    self.changed.notify_all()
            await asyncio.sleep(interval())

    async def next(self, seen: int, timeout_s: float) -> tuple[bytes | None, int]:
        async with self.changed:
            if self.sequence == seen:
                try:
                    await asyncio.wait_for(self.changed.wait(), timeout_s)
                except asyncio.TimeoutError:
                    return None, seen
            return self.data, self.sequence


class ConsoleApp:
    def __init__(self, config: Callable[[], ConsoleConfig], snapshot: Callable[[], dict[str, Any]],
                 version: Callable[[], int], history: Callable[[float], list[dict[str, Any]]],
                 events: Callable[..., list[dict[str, Any]]], invoke: Invoke, credentials: Credentials,
                 on_action: Callable[[str, str, dict[str, Any], int, Any], None]) -> None:
        self.config, self.snapshot, self.history, self.events = config, snapshot, history, events
        self.invoke, self.credentials, self.on_action = invoke, credentials, on_action
        self.sessions = Sessions()
        self.broadcaster = Broadcaster(lambda: json.dumps(self.snapshot(), separators=(",", ":")).encode(), version)
        self.streams = 0
        # the site clock's offset from UTC, for the chart's hour labels (site time, like the billing quarters)
        self.snapshot_offset: Callable[[], float] = lambda: 0.0
        self.static = {name: (resources.files("console_module") / "static" / name).read_bytes()
                       for name in ("console.css", "console.js")}
        self.app = web.Application(middlewares=[self.guard], client_max_size=MAX_BODY_BYTES)
        r = self.app.router
        for href, key, _ in pages.NAV:
            r.add_get(href, self.page_handler(key))
        r.add_get("/signin", self.page_handler("signin"))
        r.add_get("/static/{name}", self.static_file)
        r.add_get("/api/snapshot", self.get_snapshot)
        r.add_get("/api/stream", self.stream)
        r.add_get("/api/history", self.get_history)
        r.add_get("/api/events", self.get_events)
        r.add_get("/api/session", self.get_session)
        r.add_post("/api/signin", self.sign_in)
        r.add_post("/api/signout", self.sign_out)
        r.add_post("/api/actions/{name}", self.action)

    # ------------------------------------------------------------ middleware

    @web.middleware
    async def guard(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        try:
            if request.method == "POST":
                origin = request.headers.get("Origin")
                if origin and origin.split("://", 1)[-1] != request.host:
                    raise FieldError(403, "Origin", f"cross-site request from {origin} refused")
            response = await handler(request)
        except FieldError as exc:
            response = problem(exc.status, exc.field, exc.message)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                response = problem(exc.status, "(path)", f"{exc.status} {exc.reason}: {request.method} {request.path}")
            else:
                raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("request %s %s failed (error id %s)", request.method, request.path, error_id)
            response = problem(500, "(server)", f"internal error {error_id} (logged on the device)", error_id=error_id)
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    # ------------------------------------------------------------ pages and files

    def page_handler(self, key: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            _query(request, set())
            return web.Response(text=pages.render(key, self.config().site_id), content_type="text/html",
                                headers={"Cache-Control": "no-cache"})
        return handler

    async def static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.static:
            raise FieldError(404, "(path)", f"no static file {name!r}")
        return web.Response(body=self.static[name], content_type=STATIC_TYPES[name[name.rindex("."):]],
                            headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------ data

    async def get_snapshot(self, request: web.Request) -> web.Response:
        _query(request, set())
        return web.json_response(self.snapshot())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        _query(request, set())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **SECURITY_HEADERS})
        await response.prepare(request)
        self.streams += 1
        seen = -1
        try:
            await response.write(b"retry: 1000\n\n")
            while True:
                data, seen = await self.broadcaster.next(seen, KEEPALIVE_S)
                await response.write(b": keep-alive\n\n" if data is None else b"data: " + data + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.streams -= 1
        return response

    async def get_history(self, request: web.Request) -> web.Response:
        query = _query(request, {"hours"})
        config = self.config()
        hours = _number_param(query, "hours", config.history_hours, 0.01, config.history_hours)
        offset = self.snapshot_offset()
        return web.json_response({"hours": hours, "step_s": config.chart_step_s, "utc_offset_s": offset,
                                  "points": self.history(hours)})

    async def get_events(self, request: web.Request) -> web.Response:
        query = _query(request, {"kind", "severity", "asset_id", "q", "limit"})
        if query.get("severity") not in (None, "info", "warning", "critical"):
            raise FieldError(400, "severity", "severity must be info, warning or critical")
        for name in ("kind", "asset_id", "q"):
            if len(query.get(name, "")) > 128:
                raise FieldError(400, name, f"{name} is longer than 128 characters")
        limit = int(_number_param(query, "limit", 200, 1, 1000))
        events = self.events(kind=query.get("kind"), severity=query.get("severity"),
                             asset_id=query.get("asset_id"), text=query.get("q"), limit=limit)
        return web.json_response({"events": events})

    # ------------------------------------------------------------ sessions

    def _session(self, request: web.Request) -> Any:
        return self.sessions.get(request.cookies.get(COOKIE), time.time())

    async def get_session(self, request: web.Request) -> web.Response:
        _query(request, set())
        session = self._session(request)
        return web.json_response({
            "signed_in": session is not None, "user": session.user if session else None,
            "csrf_token": session.csrf if session else None,
            "actions_enabled": self.config().operator_actions_enabled,
            "credentials_configured": self.credentials.configured,
        }, headers={"Cache-Control": "no-store"})

    async def sign_in(self, request: web.Request) -> web.Response:
        form = validate(SignIn, await read_body(request))
        config, now = self.config(), time.time()
        address = request.remote or "?"
        keys = [f"user:{form.user}", f"addr:{address}"]
        until = self.sessions.locked_until(keys, now)
        if until:
            return problem(429, "user", f"too many failed sign-ins: locked for another {until - now:.0f} s",
                           retry_after_s=round(until - now))
        # the password hash takes a moment of CPU: off the event loop, so live pages keep flowing
        ok = await asyncio.get_running_loop().run_in_executor(None, self.credentials.check, form.user, form.password)
        if not ok:
            self.sessions.failed(form.user, address, now, config.max_failed_signins, config.lockout_s)
            log.warning("failed sign-in for %r from %s", form.user, address)
            return problem(401, "password", "wrong user name or password")
        self.sessions.succeeded(form.user)
        token, session = self.sessions.create(form.user, now, config.session_ttl_s)
        log.info("%r signed in from %s", form.user, address)
        response = web.json_response({"signed_in": True, "user": form.user, "csrf_token": session.csrf})
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                            max_age=int(config.session_ttl_s), secure=request.secure)
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is not None:
            self._check_csrf(request, session)
            self.sessions.end(request.cookies.get(COOKIE))
        response = web.json_response({"signed_in": False})
        response.del_cookie(COOKIE, path="/")
        return response

    def _check_csrf(self, request: web.Request, session: Any) -> None:
        token = request.headers.get(CSRF_HEADER)
        if not token:
            raise FieldError(403, "csrf_token", f"the {CSRF_HEADER} header is missing")
        if not secrets.compare_digest(token, session.csrf):
            raise FieldError(403, "csrf_token", f"the {CSRF_HEADER} header does not match this session")

    # ------------------------------------------------------------ operator actions

    async def action(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        spec = ACTIONS.get(name)
        if spec is None:
            raise FieldError(404, "(path)", f"no action {name!r}; actions: {', '.join(ACTIONS)}")
        config = self.config()
        if not config.operator_actions_enabled:
            raise FieldError(403, "operator_actions_enabled",
                             "operator actions are off in this console's twin (operator_actions_enabled)")
        session = self._session(request)
        if session is None:
            raise FieldError(401, "session", "sign in first")
        self._check_csrf(request, session)
        payload = spec.payload(validate(spec.model, await read_body(request)), config)
        module = spec.module(config)
        status, answer = await self.invoke(module, spec.method, payload)
        self.on_action(session.user, f"{module}.{spec.method}", payload, status, answer)
        http_status = status if 200 <= status < 500 else 502
        return web.json_response({"module": module, "method": spec.method, "request": payload, "status": status,
                                  "answer": answer}, status=http_status)
