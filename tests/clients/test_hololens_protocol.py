"""The HoloLens sample cannot be built here (no Unity), so its decoder is held to the protocol by
text: every message type and field of docs/protocol.md and of the golden vectors is a key the C#
decoder reads, and it reads no key the protocol does not define."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DECODER = ROOT / "clients" / "hololens" / "Assets" / "Scripts" / "Protocol" / "WireDecoder.cs"
ENVELOPE = {"v", "type", "seq", "dtype", "shape", "data"}


def _protocol() -> tuple[set[str], set[str]]:
    """(message types, field names) from the message table and the defect record of protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    table = text[text.index("## Messages"):text.index("## Examples")]
    types, fields = set(), set()
    for row in table.splitlines():
        cells = row.split("|")
        if len(cells) > 3 and (m := re.fullmatch(r"\s*`(\w+)`\s*", cells[1])):
            types.add(m.group(1))
            fields |= set(re.findall(r"`([A-Za-z_]\w*)`", cells[3]))
    record = table[table.index("A **defect** record"):]
    fields |= set(re.findall(r"`([A-Za-z_]\w*)`", record))
    return types, fields


def _keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _keys(v)}
    return set()


def _decoder() -> tuple[set[str], set[str]]:
    src = DECODER.read_text()
    types = set(re.findall(r'^\s*"(\w+)" => ', src, re.M))
    keys = set(re.findall(r'\(\w+, "(\w+)"\)', src)) | set(re.findall(r'TryGetValue\("(\w+)"', src))
    keys |= set(re.findall(r'\["(\w+)"\] =', src))  # keys it encodes
    return types, keys


def test_the_decoder_covers_every_message_type_and_field_of_the_protocol() -> None:
    p_types, p_fields = _protocol()
    d_types, d_keys = _decoder()
    assert len(p_types) >= 11 and p_types == d_types, (p_types ^ d_types)
    assert not p_fields - d_keys, f"fields the HoloLens decoder does not read: {sorted(p_fields - d_keys)}"
    unknown = d_keys - p_fields - ENVELOPE
    assert not unknown, f"keys the decoder reads that docs/protocol.md does not define: {sorted(unknown)}"


def test_the_decoder_reads_every_key_of_the_golden_vectors() -> None:
    _, d_keys = _decoder()
    for f in sorted((ROOT / "tests" / "overlays" / "golden").glob("*.json")):
        doc = json.loads(f.read_text())
        stats_maps = {"latency_ms", "robot_rate", "seam_rate", "views", "seam_coverage"}  # keys are ids, not fields
        keys = _keys({k: v for k, v in doc.items() if k not in stats_maps}) | (set(doc) & stats_maps)
        assert not keys - d_keys - ENVELOPE, f"{f.name}: {sorted(keys - d_keys - ENVELOPE)}"
