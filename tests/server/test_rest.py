"""REST endpoints on the running server: roles, inspections from real records, feedback, config."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from overlays.codec import decode, encode
from overlays.defect import Defect
from overlays.messages import Feedback, Hello, Welcome
from pipeline.twin import DigitalTwin
from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig, TokensConfig
from xrserver.sources import TwinSource
from xrserver.testing import Running, run_server, scaled

pytestmark = pytest.mark.usefixtures("no_slow_callbacks")


def _call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


async def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    return await asyncio.to_thread(_call, url, token, body)


def _defect(defect_id: str, vehicle_id: str) -> Defect:
    return Defect(defect_id, vehicle_id, "open", (0.1, 0.2, 0.0), (0.0, 0.0, -1.0), (20.0, 8.0, 3.0), 160.0, 0.8,
                  0.5, 0.05, "C1", 412.0, "R3", ("lower",), 1, 2, 3)


async def _open_pass(srv: Running) -> str:
    async with asyncio.timeout(scaled(20)):
        while srv.xr.scheduler is None or srv.xr.scheduler.current_pass_id is None:
            await asyncio.sleep(0.05)
    pass_id = srv.xr.scheduler.current_pass_id
    assert pass_id is not None
    return pass_id


async def test_roles_records_and_feedback(tmp_path: Path, tiny_twin: DigitalTwin) -> None:
    admin_token = "admin-token-0123456789"
    cfg = ServerConfig(storage=StorageConfig(db_path=tmp_path / "r.db"), tokens=TokensConfig(admin=(admin_token,)),
                       analyzer=AnalyzerConfig(kind="diagnostic"))
    async with run_server(cfg, [TwinSource.from_twin(tiny_twin, fps=10, camera_ids=("lower",))]) as srv:
        op, sup = srv.auth.token_for("operator"), srv.auth.token_for("supervisor")
        cam = srv.auth.token_for("camera")
        pass_id = await _open_pass(srv)
        assert srv.xr.records is not None
        vehicle = pass_id.split(":")[0]
        defects = [_defect("D1", vehicle), _defect("D2", vehicle)]
        await asyncio.to_thread(srv.xr.records.upsert_defects, pass_id, defects)

        assert (await call(f"{srv.http}/api/inspections"))[0] == 401
        assert (await call(f"{srv.http}/api/inspections", "wrong-token-wrong-token"))[0] == 401
        assert (await call(f"{srv.http}/api/inspections", op))[0] == 403
        assert (await call(f"{srv.http}/api/config", op))[0] == 403, "an operator cannot see or change config"
        assert (await call(f"{srv.http}/api/config", sup))[0] == 403
        assert (await call(f"{srv.http}/api/cameras", cam))[0] == 403, "a camera may only publish"
        code, conf = await call(f"{srv.http}/api/config", admin_token)
        assert code == 200 and conf["tokens"]["admin"] == ["***"] and admin_token not in json.dumps(conf)

        code, listing = await call(f"{srv.http}/api/inspections?limit=5", sup)
        assert code == 200 and listing["inspections"][0]["pass_id"] == pass_id
        assert listing["inspections"][0]["n_defects"] == 2
        assert listing["inspections"][0]["model_name"] == "diagnostic-image-stats"

        code, fb = await call(f"{srv.http}/api/inspections/{pass_id}/feedback", op,
                              {"defect_id": "D1", "action": "confirm", "comment": "seen"})
        assert code == 201 and fb["feedback_id"] >= 1
        assert (await call(f"{srv.http}/api/inspections/{pass_id}/feedback", op,
                           {"defect_id": "D9", "action": "confirm"}))[0] == 404
        assert (await call(f"{srv.http}/api/inspections/{pass_id}/feedback", op,
                           {"defect_id": "D1", "action": "explode"}))[0] == 400
        assert (await call(f"{srv.http}/api/inspections/{pass_id}/feedback", cam,
                           {"defect_id": "D1", "action": "confirm"}))[0] == 403

        async with connect(srv.ws_url("operator", channels="stats")) as ws:  # feedback over the WebSocket
            await ws.send(encode(Hello("hl2", "operator")))
            assert isinstance(decode(await ws.recv(decode=False)), Welcome)
            await ws.send(encode(Feedback("D2", vehicle, "rejected", "op7", time.time_ns(), "false alarm")))
            async with asyncio.timeout(scaled(10)):
                while True:
                    got = (await call(f"{srv.http}/api/inspections/{pass_id}", sup))[1]
                    if len(got["feedback"]) == 2:
                        break
                    await asyncio.sleep(0.1)
        status = {d["defect_id"]: d["status"] for d in got["defects"]}
        assert status == {"D1": "confirmed", "D2": "rejected"}
        assert [f["action"] for f in got["feedback"]] == ["confirm", "reject"]
        assert (await call(f"{srv.http}/api/inspections/nope", sup))[0] == 404
