"""The supervisor dashboard in real headless Chromium (Debian's, driven by selenium): it loads with a
token, the 3D view and the camera tiles (WebRTC video) come up, the defect list fills with the twin's
defects, and a click on "confirm" is recorded on the server. The screenshot lands in the test's tmp
folder (and in ``$XR_ARTIFACTS`` when set). A vehicle that has left the cell is reviewed and confirmed from
the history. A browser camera publishes into the server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from selenium.webdriver.remote.webdriver import WebDriver

from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig, WebRtcSourceConfig
from xrserver.sources import TwinSource
from xrserver.testing import get_json, run_server, scaled

Until = Callable[[str, float], Awaitable[object]]  # the `until` fixture (conftest.py)



async def test_dashboard_shows_the_twin_and_records_a_confirm(browser: WebDriver, until: Until,
                                                              screenshot: Callable[[str], Path],
                                                              reference_config: ServerConfig) -> None:
    twin = DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240, speed_mps=0.5))
    async with run_server(reference_config, [TwinSource.from_twin(twin, fps=10, first_vehicle=5)]) as srv:
        token = srv.auth.token_for("supervisor")
        await asyncio.to_thread(browser.get, f"{srv.http}/?token={token}")
        await until("return document.getElementById('conn').textContent.startsWith('live')", 20)
        # camera tiles from stats.views, the mesh in the 3D view, then the twin's defects in the list
        await until("return document.querySelectorAll('#cameras .tile.up').length === 4", 20)
        # each tile plays its camera's WebRTC track (decoded pictures, not just a connected peer)
        # (a loaded machine makes the server adapt: any rung of the ladder keeps the 4:3 picture)
        await until("const v = [...document.querySelectorAll('#cameras video')];"
                    "return v.length === 4 && v.every(e => e.videoWidth >= 80 && e.currentTime > 0"
                    " && e.videoWidth * 3 === e.videoHeight * 4)", 40)
        assert browser.execute_script("return document.getElementById('scene').width > 0")
        # The stream is live: a defect can be withdrawn, or its vehicle leave the cell, between reading its
        # row and the click landing. Its row then goes, and the supervisor confirms another (3 tries).
        for _ in range(3):
            await until("return document.querySelectorAll('#defects tbody tr').length > 0", 90)
            # the list re-renders on every defects message: read a row in one script, never hold an element
            defect_id, seam = browser.execute_script(
                "const r = document.querySelector('#defects tbody tr');"
                "return [r.dataset.defectId, r.querySelectorAll('td')[1].textContent]")
            assert re.fullmatch(r"V000-\d{5}-D\d{3}", defect_id), defect_id  # the twin's vehicles, from 5 on
            assert seam.startswith(("F", "C", "B"))  # a seam id
            browser.execute_script(f"document.querySelector('tr[data-defect-id=\"{defect_id}\"] button.fb-confirm')"
                                   f".click()")
            row = f"document.querySelector('tr[data-defect-id=\"{defect_id}\"]')"
            outcome = await until(f"const r = {row}; return r === null ? 'gone' : r.className === 'confirmed' && 'ok'",
                                  15)
            if outcome == "ok":
                break
        assert outcome == "ok", "three defects left the list before their confirm came back"
        screenshot("dashboard.png")
        assert srv.xr.records is not None
        pass_id = await asyncio.to_thread(srv.xr.records.pass_of_defect, defect_id)
        assert pass_id is not None
        record = await asyncio.to_thread(get_json, f"{srv.http}/api/inspections/{pass_id}", token)
    feedback = record["feedback"]
    assert isinstance(feedback, list)
    assert any(f["defect_id"] == defect_id and f["action"] == "confirm" and f["role"] == "supervisor"
               for f in feedback), feedback


async def test_a_supervisor_reviews_a_vehicle_that_left_and_confirms_its_defect(
        browser: WebDriver, until: Until, screenshot: Callable[[str], Path], reference_config: ServerConfig) -> None:
    """An ended inspection opens from the history with its defects, and a confirm there is recorded on it."""
    twin = DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240, speed_mps=1.0))
    async with run_server(reference_config, [TwinSource.from_twin(twin, fps=10, first_vehicle=5)]) as srv:
        token = srv.auth.token_for("supervisor")
        await asyncio.to_thread(browser.get, f"{srv.http}/?token={token}")
        # an ended inspection with defects shows in the history (refreshed on every pass_end)
        pass_id = await until("const r = [...document.querySelectorAll('#history tbody tr')].find(r =>"
                              " r.children[1].textContent !== 'in progress' && Number(r.children[2].textContent) > 0);"
                              "return r ? r.dataset.passId : null", 120)
        browser.execute_script(f"document.querySelector('#history tr[data-pass-id=\"{pass_id}\"] button.review')"
                               f".click()")
        await until("return document.querySelectorAll('#review tbody tr').length > 0", 15)
        assert not browser.execute_script("return document.getElementById('review').hidden")
        defect_id = browser.execute_script("return document.querySelector('#review tbody tr').dataset.defectId")
        browser.execute_script(f"document.querySelector('#review tr[data-defect-id=\"{defect_id}\"] button.fb-confirm')"
                               f".click()")
        await until(f"const r = document.querySelector('#review tr[data-defect-id=\"{defect_id}\"]');"
                    "return r !== null && r.className === 'confirmed'", 15)
        screenshot("dashboard-review.png")
        record = await asyncio.to_thread(get_json, f"{srv.http}/api/inspections/{pass_id}", token)
        browser.execute_script("document.getElementById('review-close').click()")
        assert browser.execute_script("return document.getElementById('review').hidden")
    assert record["ended_ts_ns"] is not None  # the vehicle had left the cell
    defects, feedback = record["defects"], record["feedback"]
    assert isinstance(defects, list) and isinstance(feedback, list)
    assert [d["status"] for d in defects if d["defect_id"] == defect_id] == ["confirmed"]
    assert any(f["defect_id"] == defect_id and f["action"] == "confirm" and f["role"] == "supervisor"
               for f in feedback), feedback


async def test_dashboard_without_a_valid_token_says_so(tmp_path: Path, browser: WebDriver, until: Until) -> None:
    cfg = ServerConfig(storage=StorageConfig(db_path=tmp_path / "r.db"), analyzer=AnalyzerConfig(kind="diagnostic"))
    twin = DigitalTwin(TwinConfig(seed=0, width_px=64, height_px=48))
    async with run_server(cfg, [TwinSource.from_twin(twin, fps=5, camera_ids=("lower",))]) as srv:
        await asyncio.to_thread(browser.get, f"{srv.http}/?token=not-a-token")
        text = await until("const t = document.getElementById('conn').textContent;"
                                     "return t.startsWith('token refused') && t", 20)
        assert "401" in str(text)


async def test_a_browser_camera_publishes_into_the_server(tmp_path: Path, browser: WebDriver, until: Until) -> None:
    cfg = ServerConfig(storage=StorageConfig(db_path=tmp_path / "r.db"), analyzer=AnalyzerConfig(kind="diagnostic"),
                       sources=(WebRtcSourceConfig(kind="webrtc", camera_id="browser0", width_px=320, height_px=240),))
    async with run_server(cfg) as srv:
        await asyncio.to_thread(browser.get, f"{srv.http}/static/publish.html?camera=browser0"
                                             f"&token={srv.auth.token_for('camera')}")
        await until("return window.xrPublish.state === 'connected'", 30)
        async with asyncio.timeout(scaled(30)):  # Chromium's test camera becomes frame sets on the server
            while not (srv.xr.scheduler and srv.xr.scheduler.framesets >= 5):
                await asyncio.sleep(0.2)
        image, _ = srv.xr.scheduler.latest_views["browser0"]
        assert image.shape == (240, 320, 3) and image.std() > 10, "a decoded picture, not a blank frame"
        assert srv.xr.health_doc()["cameras"][0]["state"] == "up"
