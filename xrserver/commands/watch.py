"""``xrserver watch URL``: print live defects, passes and alerts from a running server.

URL is the WebSocket URL ``xrserver serve`` prints (``ws://HOST:PORT/ws?token=...``); the
token may instead come from ``--token`` or the ``XR_TOKEN`` environment variable, so it stays
out of shell history. ``--role`` must be the token's role. ``--json`` prints one JSON object
per event; ``--max-events``/``--duration`` stop after that many events or seconds (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from clients.python import ClientError, XrClient
from overlays.defect import Defect
from overlays.messages import ROLES, Alert, Defects, Message, PassEnd, PassStart
from xrserver.commands.common import positive_int
from xrserver.errors import CliError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watch", help="print live defects from a running server",
                       description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("url", help="WebSocket URL, e.g. ws://127.0.0.1:8765/ws?token=...")
    p.add_argument("--token", default=None, help="token (default: from the URL, else $XR_TOKEN)")
    p.add_argument("--role", choices=[r for r in ROLES if r != "camera"], default="operator",
                   help="the token's role (default operator)")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.add_argument("--max-events", type=positive_int, default=None, help="stop after this many events")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=cmd_watch)


def split_token(url: str) -> tuple[str, str | None]:
    """(URL without its token, the token from its query or None)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    token = query.pop("token", [None])[0]
    rest = "&".join(f"{k}={v}" for k, vs in query.items() for v in vs)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), token


def _defect_doc(d: Defect) -> dict[str, Any]:
    return {"defect_id": d.defect_id, "vehicle_id": d.vehicle_id, "status": d.status, "seam_id": d.seam_id,
            "robot_id": d.robot_id, "s_mm": d.s_mm, "centroid_vehicle_m": d.centroid_vehicle_m,
            "extent_mm": d.extent_mm, "area_mm2": d.area_mm2, "peak_score": d.peak_score, "views": d.views}


def _defect_line(d: Defect) -> str:
    where = f"seam {d.seam_id} (robot {d.robot_id}) at {d.s_mm:.0f} mm" if d.seam_id else "off seam"
    x, y, z = (1000 * c for c in d.centroid_vehicle_m)
    ex, ey, _ = d.extent_mm
    return (f"{d.defect_id} {d.status:<9} {where}, {ex:.0f}x{ey:.0f} mm, score {d.peak_score:.2f}, "
            f"at ({x:.0f}, {y:.0f}, {z:.0f}) mm, views {','.join(d.views)}")


def events(msg: Message) -> list[tuple[str, dict[str, Any], str]]:
    """The printable events of one message: (kind, JSON document, text line)."""
    if isinstance(msg, PassStart):
        return [("pass_start", {"vehicle_id": msg.vehicle_id}, f"== vehicle {msg.vehicle_id} entered")]
    if isinstance(msg, PassEnd):
        return [("pass_end", {"vehicle_id": msg.vehicle_id, "n_defects": msg.n_defects, "coverage": msg.coverage},
                 f"== vehicle {msg.vehicle_id} left: {msg.n_defects} defects, seam coverage {msg.coverage:.0%}")]
    if isinstance(msg, Defects):
        out = [("defect", _defect_doc(d), ("  " if msg.mode == "full" else "+ ") + _defect_line(d))
               for d in msg.defects]
        out += [("defect_removed", {"defect_id": k}, f"- {k} withdrawn") for k in msg.removed]
        return out
    if isinstance(msg, Alert):
        return [("alert", {"alert_id": msg.alert_id, "kind": msg.kind, "scope": msg.scope, "key": msg.key,
                           "rate": msg.rate},
                 f"! alert {msg.alert_id} {msg.kind}: {msg.scope} {msg.key} at {msg.rate:.0%} of vehicles")]
    return []


async def watch(url: str, token: str, role: str, as_json: bool, max_events: int | None,
                duration: float | None) -> int:
    n = 0
    async with XrClient(url, token, role, channels=("passes", "defects", "alerts"),  # type: ignore[arg-type]
                        client_name="xrserver-watch") as client:
        try:
            async with asyncio.timeout(duration):
                async for msg in client:
                    for kind, doc, line in events(msg):
                        print(json.dumps({"event": kind, **doc}) if as_json else line, flush=True)
                        n += 1
                        if max_events is not None and n >= max_events:
                            return 0
        except TimeoutError:
            return 0
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    url, url_token = split_token(args.url)
    token = args.token or url_token or os.environ.get("XR_TOKEN")
    if not token:
        raise CliError("no token: put ?token=... in the URL, pass --token or set XR_TOKEN")
    try:
        return asyncio.run(watch(url, token, args.role, args.json, args.max_events, args.duration))
    except ClientError as e:
        raise CliError(str(e)) from None
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 0
