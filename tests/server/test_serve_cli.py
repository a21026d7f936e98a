"""``xrserver serve`` as a real subprocess: URLs with tokens, /health, a client, SIGTERM, records."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from overlays.codec import decode, encode
from overlays.messages import Hello, Welcome
from xrserver.testing import REPO_ROOT, scaled


def _serve(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], Path]:
    """Start ``xrserver serve``; stdout is a pipe, stderr (the logs) goes to a file.

    The file can be read whether or not the server exits, so a hung shutdown's logs (and the
    watchdog's stacks) reach the failure message; a pipe nobody drains could also block the server.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    err_path = cwd / "serve.stderr"
    with err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "xrserver.cli", "serve", *args], cwd=cwd, env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    return proc, err_path


def _reap(proc: subprocess.Popen[str]) -> None:
    """Kill the server if it is still running (a failed test) and close its stdout pipe."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _read_urls(proc: subprocess.Popen[str], timeout: float) -> dict[str, str]:
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "camera token" not in urls:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.match(r"\s+([a-zA-Z ]+):\s+(\S+)", line)
        if m:
            urls[m.group(1)] = m.group(2)
    return urls


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.mark.slow
def test_serve_prints_urls_answers_health_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    cfg = tmp_path / "cell.yaml"
    cfg.write_text("server: {port: 0}\nstorage: {db_path: records/r.db, cache_dir: cache}\n"
                   "analyzer: {preset: tiny, lut_step_m: 0.1}\n"
                   "sources: [{kind: twin, fps: 10, width_px: 160, height_px: 120, cameras: [lower, oblique_left]}]\n")
    proc, err_path = _serve(["--config", str(cfg), "--log-format", "json"], tmp_path)
    try:
        urls = _read_urls(proc, scaled(120))  # the first start trains the two cameras' models
        assert {"operator", "supervisor", "admin", "WebSocket", "health", "camera token"} <= set(urls), urls
        op_token = urls["operator"].split("token=")[1]
        base = urls["operator"].split("/?")[0]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base) and len(op_token) >= 16

        code, bare = _get(f"{base}/health")
        assert code == 200 and set(bare) == {"status"}, "without a token /health tells liveness only"
        code, _ = _get(f"{base}/api/inspections?token={op_token}")
        assert code == 403  # an operator may not read history
        deadline = time.monotonic() + scaled(30)
        doc: dict[str, object] = {}
        while time.monotonic() < deadline:
            code, doc = _get(urls["health"])
            if code == 200 and doc.get("framesets", 0) and doc.get("pass_id"):
                break
            time.sleep(0.2)
        assert doc.get("status") == "ok" and doc.get("pass_id"), doc

        async def client() -> int | None:
            async with connect(urls["WebSocket"]) as ws:
                await ws.send(encode(Hello("cli-test", "operator")))
                assert isinstance(decode(await asyncio.wait_for(ws.recv(decode=False), scaled(10))), Welcome)
                t_kill = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(scaled(10)):
                        while True:
                            await ws.recv()
                except ConnectionClosed as e:
                    assert time.monotonic() - t_kill < scaled(5)
                    return e.rcvd.code if e.rcvd else None

        close_code = asyncio.run(client())
        assert close_code == 1001, "clients are told the server is going away"
        rc = proc.wait(timeout=scaled(25))  # past the 20 s watchdog: a hang shows its stacks below
    finally:
        _reap(proc)
    err = err_path.read_text()
    assert rc == 0, err[-4000:]
    assert op_token not in err and "token=***" in err, "tokens never reach the logs"
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"ts", "level", "logger", "msg"} <= set(logs[0]) and any("shutting down" in r["msg"] for r in logs)
    assert (tmp_path / "cache" / "models").is_dir(), "the models trained on first start are cached"
    db = sqlite3.connect(tmp_path / "records" / "r.db")
    rows = db.execute("SELECT pass_id, ended_ts_ns, model_name FROM passes").fetchall()
    db.close()
    assert rows and all(r[1] is not None for r in rows), f"the open pass was ended and committed: {rows}"


def test_a_shutdown_past_its_timeout_dumps_every_thread_and_exits_1(tmp_path: Path) -> None:
    """The watchdog: here the timeout is shorter than any real shutdown, so it always fires."""
    cfg = tmp_path / "cell.yaml"
    cfg.write_text("server: {port: 0, shutdown_timeout_s: 0.001}\n"
                   "storage: {db_path: records/r.db, cache_dir: cache}\nanalyzer: {kind: diagnostic}\n"
                   "sources: [{kind: twin, fps: 10, width_px: 80, height_px: 60, cameras: [lower]}]\n")
    proc, err_path = _serve(["--config", str(cfg)], tmp_path)
    try:
        assert "camera token" in _read_urls(proc, scaled(60)), err_path.read_text()[-2000:]
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=scaled(15))
    finally:
        _reap(proc)
    err = err_path.read_text()
    assert rc == 1, err[-2000:]
    assert "Thread 0x" in err and "most recent call first" in err, err[-2000:]


def test_bad_config_fails_at_start_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("sources:\n  - kind: twin\n    fps: -3\n")
    proc, err_path = _serve(["--config", str(cfg)], tmp_path)
    out, _ = proc.communicate(timeout=scaled(60))
    err = err_path.read_text()
    assert proc.returncode == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and "sources[0].fps" in lines[0], err
    assert "Traceback" not in err and out == ""
