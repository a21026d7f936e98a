"""TLS from the config: HTTPS and WSS on the one port, with a certificate made by openssl."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from overlays.codec import decode, encode
from overlays.messages import Hello, Welcome
from pipeline.twin import DigitalTwin
from xrserver.config import AnalyzerConfig, ServerConfig, ServerSection, StorageConfig, TlsConfig
from xrserver.sources import TwinSource
from xrserver.testing import run_server


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


async def test_https_and_wss_with_the_configured_certificate(tmp_path: Path, tiny_twin: DigitalTwin) -> None:
    cert, key = _self_signed(tmp_path)
    cfg = ServerConfig(server=ServerSection(tls=TlsConfig(certfile=cert, keyfile=key)),
                       storage=StorageConfig(db_path=tmp_path / "r.db"), analyzer=AnalyzerConfig(kind="diagnostic"))
    trust = ssl.create_default_context(cafile=str(cert))
    async with run_server(cfg, [TwinSource.from_twin(tiny_twin, fps=5, camera_ids=("lower",))]) as srv:
        token = srv.auth.token_for("operator")
        base = f"https://127.0.0.1:{srv.port}"

        def get(url: str, context: ssl.SSLContext) -> dict[str, object]:
            with urllib.request.urlopen(url, context=context, timeout=10) as r:
                doc: dict[str, object] = json.loads(r.read())
                return doc

        assert (await asyncio.to_thread(get, f"{base}/health?token={token}", trust))["status"] in ("ok", "starting")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(get, f"{base}/health", ssl.create_default_context())
        async with connect(f"wss://127.0.0.1:{srv.port}/ws?token={token}", ssl=trust) as ws:
            await ws.send(encode(Hello("tls-test", "operator")))
            assert isinstance(decode(await asyncio.wait_for(ws.recv(decode=False), 10)), Welcome)
