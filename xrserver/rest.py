"""HTTP endpoints: health, metrics, inspection records, feedback, config. Thin: auth, call, answer.

Every endpoint but the bare liveness answer of ``/health`` needs a token (``Authorization:
Bearer TOKEN`` or ``?token=TOKEN``): 401 without a valid one, 403 when the role lacks the
permission. Record reads and writes run in the io worker.

==========================================  ==========  ================================
endpoint                                    permission  answer
==========================================  ==========  ================================
GET  /                                      (none)      the supervisor dashboard (clients/web, /static/...)
GET  /api/session                           view        the token's role
POST /rtc/offer                             view        WebRTC: ``{"sdp", "type": "offer"}`` -> answer
POST /rtc/publish/{camera_id}               publish     WebRTC: a camera peer's offer (one video track)
GET  /health                                (none/view) status; with a token: cameras, clients
GET  /metrics                               history     Prometheus text
GET  /api/cameras                           view        camera health
GET  /api/inspections?limit=&before_ts_ns=  history     passes, newest first
GET  /api/inspections/{pass_id}             history     one pass, defects, feedback
POST /api/inspections/{pass_id}/feedback    feedback    ``{"defect_id", "action", "comment"}``
GET  /api/config                            configure   the running config (tokens hidden)
GET  /api/scene/mesh.glb                     view        the underbody mesh (binary glTF, vehicle frame)
==========================================  ==========  ================================
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from xrserver.auth import AuthError, Permission, Principal, TokenAuth
from xrserver.records import FEEDBACK_STATUS, RecordError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
#: The supervisor dashboard's static files (clients/web), served at / and /static.
WEB_DIR = Path(__file__).resolve().parents[1] / "clients" / "web"


class Api:
    """The routes of one server; ``server`` gives the state (see :class:`xrserver.app.XrServer`)."""

    def __init__(self, server: Any, auth: TokenAuth) -> None:
        self.s = server
        self.auth = auth

    def _principal(self, request: Request, permission: Permission) -> Principal:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.query_params.get("token")
        principal = self.auth.authenticate(token)  # AuthError -> 401
        if not principal.can(permission):
            raise PermissionError(f"role {principal.role} may not {permission}")
        return principal

    def _guard(self, permission: Permission,
               handler: Callable[[Request, Principal], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                principal = self._principal(request, permission)
            except AuthError as e:
                return JSONResponse({"error": f"unauthorized: {e}"}, 401, headers={"WWW-Authenticate": "Bearer"})
            except PermissionError as e:
                return JSONResponse({"error": f"forbidden: {e}"}, 403)
            result: Response = await handler(request, principal)
            return result

        return endpoint

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index),
            Mount("/static", StaticFiles(directory=WEB_DIR), name="static"),
            Route("/api/session", self._guard("view", self.session)),
            Route("/rtc/offer", self._guard("view", self.rtc_offer), methods=["POST"]),
            Route("/rtc/publish/{camera_id:str}", self._guard("publish", self.rtc_publish), methods=["POST"]),
            Route("/health", self.health),
            Route("/metrics", self._guard("history", self.metrics)),
            Route("/api/cameras", self._guard("view", self.cameras)),
            Route("/api/inspections", self._guard("history", self.list_inspections)),
            Route("/api/inspections/{pass_id:str}", self._guard("history", self.get_inspection)),
            Route("/api/inspections/{pass_id:str}/feedback", self._guard("feedback", self.post_feedback),
                  methods=["POST"]),
            Route("/api/config", self._guard("configure", self.get_config)),
            Route("/api/scene/mesh.glb", self._guard("view", self.mesh)),
        ]

    async def index(self, request: Request) -> Response:
        """The supervisor dashboard (static; it needs ``?token=`` for every call it makes)."""
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def rtc_offer(self, request: Request, p: Principal) -> Response:
        result: Response = await self.s.rtc.offer(request, p.role)
        return result

    async def rtc_publish(self, request: Request, p: Principal) -> Response:
        result: Response = await self.s.rtc.publish(request, request.path_params["camera_id"])
        return result

    async def session(self, request: Request, p: Principal) -> Response:
        return JSONResponse({"role": p.role})

    async def health(self, request: Request) -> Response:
        doc = self.s.health_doc()
        try:
            self._principal(request, "view")
        except (AuthError, PermissionError):
            return JSONResponse({"status": doc["status"]})  # liveness for orchestrators; nothing else
        return JSONResponse(doc)

    async def metrics(self, request: Request, p: Principal) -> Response:
        self.s.refresh_metrics()
        return Response(self.s.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def cameras(self, request: Request, p: Principal) -> Response:
        return JSONResponse(self.s.health_doc()["cameras"])

    async def list_inspections(self, request: Request, p: Principal) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
            before_raw = request.query_params.get("before_ts_ns")
            before = int(before_raw) if before_raw else None
        except ValueError:
            return JSONResponse({"error": "limit and before_ts_ns must be integers"}, 400)
        rows = await self.s.workers.run("io", self.s.records.list_passes, limit, before)
        return JSONResponse({"inspections": rows})

    async def get_inspection(self, request: Request, p: Principal) -> Response:
        try:
            doc = await self.s.workers.run("io", self.s.records.get_pass, request.path_params["pass_id"])
        except RecordError as e:
            return JSONResponse({"error": str(e)}, 404)
        return JSONResponse(doc)

    async def post_feedback(self, request: Request, p: Principal) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
        try:
            doc = json.loads(body)
            defect_id, action = str(doc["defect_id"]), str(doc["action"])
            comment = str(doc.get("comment", ""))[:2000]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'expected JSON {"defect_id": ..., "action": ..., "comment": ...}'}, 400)
        if action not in FEEDBACK_STATUS:
            return JSONResponse({"error": f"action must be one of {sorted(FEEDBACK_STATUS)}"}, 400)
        pass_id = request.path_params["pass_id"]
        try:
            fid = await self.s.workers.run("io", self.s.records.add_feedback, pass_id, defect_id, action, p.role,
                                           time.time_ns(), comment)
        except RecordError as e:
            return JSONResponse({"error": str(e)}, 404)
        await self.s.apply_feedback(pass_id, defect_id, FEEDBACK_STATUS[action])
        return JSONResponse({"feedback_id": fid}, 201)

    async def mesh(self, request: Request, p: Principal) -> Response:
        if self.s.mesh_glb is None:
            return JSONResponse({"error": "this server has no underbody mesh (diagnostic analyzer)"}, 404)
        return Response(self.s.mesh_glb, media_type="model/gltf-binary",
                        headers={"Cache-Control": "private, max-age=3600"})

    async def get_config(self, request: Request, p: Principal) -> Response:
        doc = self.s.config.model_dump(mode="json")
        doc["tokens"] = {role: ["***"] * len(v) for role, v in doc["tokens"].items()}
        if doc.get("mqtt") and doc["mqtt"].get("password"):
            doc["mqtt"]["password"] = "***"
        return JSONResponse(doc)
