"""The overlay codec: golden vectors round-trip; malformed and fuzzed input raises ProtocolError only."""

from __future__ import annotations

import base64
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overlays import ProtocolError, decode, encode, to_wire
from overlays.examples import example_messages
from overlays.messages import MAX_ARRAY_ELEMENTS, MAX_DEFECTS, Heatmap, Message

GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = example_messages()
NAMES = sorted(EXAMPLES)


def _wire_equal(a: Message, b: Message) -> None:
    assert type(a) is type(b)
    assert msgpack.packb(to_wire(a), use_bin_type=True) == msgpack.packb(to_wire(b), use_bin_type=True)


def test_every_message_type_has_a_golden_vector() -> None:
    types = {to_wire(m)["type"] for m in EXAMPLES.values()}
    assert types == {"hello", "welcome", "scene", "pass_start", "pass_end", "pose", "heatmap", "defects", "alert",
                     "stats", "feedback"}
    assert sorted(p.stem for p in GOLDEN.glob("*.msgpack")) == NAMES
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_golden_vectors_round_trip(name: str) -> None:
    packed = (GOLDEN / f"{name}.msgpack").read_bytes()
    text = (GOLDEN / f"{name}.json").read_bytes().rstrip(b"\n")
    assert encode(EXAMPLES[name], "msgpack") == packed  # the encoder is stable byte for byte
    assert encode(EXAMPLES[name], "json") == text
    from_packed = decode(packed)
    from_json = decode(text, "json")
    _wire_equal(from_packed, EXAMPLES[name])
    _wire_equal(from_json, EXAMPLES[name])
    assert encode(from_packed) == packed and encode(from_json, "json") == text


@pytest.mark.parametrize("name", NAMES)
def test_json_mirrors_msgpack(name: str) -> None:
    """Same keys, same order, same values; only array data differs (base64 text vs binary)."""

    def norm(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, list):
            return [norm(v) for v in x]
        if isinstance(x, bytes):
            return base64.b64encode(x).decode("ascii")
        return x

    packed = msgpack.unpackb((GOLDEN / f"{name}.msgpack").read_bytes(), raw=False)
    mirrored = json.loads((GOLDEN / f"{name}.json").read_text())
    assert json.dumps(norm(packed)) == json.dumps(mirrored)


def _mutated(name: str, path: tuple[str | int, ...], value: Any) -> bytes:
    wire = msgpack.unpackb((GOLDEN / f"{name}.msgpack").read_bytes(), raw=False)
    node = wire
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    out: bytes = msgpack.packb(wire, use_bin_type=True)
    return out


_DELETE = object()
BAD_CASES: list[tuple[str, tuple[str | int, ...], Any]] = [
    ("hello", ("v",), 2),
    ("hello", ("v",), "1"),
    ("hello", ("type",), "nope"),
    ("hello", ("seq",), -1),
    ("hello", ("seq",), True),
    ("hello", ("role",), "root"),
    ("hello", ("versions",), []),
    ("hello", ("extra",), 1),
    ("hello", ("client_name",), _DELETE),
    ("hello", ("client_name",), "x" * 300),
    ("pose", ("s_m",), math.nan),
    ("pose", ("s_m",), math.inf),
    ("pose", ("velocity_cell_mps",), [0.1, 0.0]),
    ("pose", ("T_cell_vehicle", "dtype"), "<f4"),
    ("pose", ("T_cell_vehicle", "shape"), [3, 4]),
    ("pose", ("T_cell_vehicle", "data"), b"\x00" * 127),
    ("pose", ("T_cell_vehicle", "data"), np.full(16, np.nan).tobytes()),
    ("pose", ("T_cell_vehicle", "data"), (2 * np.eye(4)).tobytes()),
    ("pose", ("T_cell_vehicle", "data"), "AAAA"),
    ("pose", ("vehicle_id",), "bad id with spaces"),
    ("heatmap_full", ("values", "shape"), [5]),
    ("heatmap_full", ("indices",), {"dtype": "<u4", "shape": [0], "data": b""}),
    ("heatmap_full", ("values", "shape"), [MAX_ARRAY_ELEMENTS + 1]),
    ("heatmap_full", ("n_vertices",), MAX_ARRAY_ELEMENTS + 1),
    ("heatmap_delta", ("indices", "data"), np.array([3, 1], "<u4").tobytes()),
    ("heatmap_delta", ("indices", "data"), np.array([1, 9], "<u4").tobytes()),
    ("heatmap_delta", ("indices",), None),
    ("defects_full", ("removed",), ["V000-01000-D009"]),
    ("defects_full", ("defects", 0, "peak_score"), 1.5),
    ("defects_full", ("defects", 0, "status"), "deleted"),
    ("defects_full", ("defects", 0, "centroid_vehicle_m"), ["a", 0, 0]),
    ("defects_full", ("defects", 0, "s_mm"), "12"),
    ("defects_full", ("defects", 0, "area_mm2"), 2**64 - 1),
    ("defects_full", ("defects", 0, "area_mm2"), 1e300),
    ("defects_full", ("defects",), [{}]),
    ("defects_full", ("defects",), [None] * (MAX_DEFECTS + 1)),
    ("defects_delta", ("removed",), ["V000-01000-D001"]),
    ("scene", ("rig", "cameras", 0, "width_px"), 0),
    ("scene", ("seams", 0, "points_vehicle_m", "shape"), [2, 2]),
    ("scene", ("mesh_sha256",), "xyz"),
    ("alert", ("n_defective",), 21),
    ("stats", ("latency_ms",), {"infer": -1.0}),
    ("stats", ("latency_ms",), {"bad key!": 1.0}),
    ("feedback", ("status",), "deleted"),
    ("feedback", ("comment",), "x" * 5000),
]


@pytest.mark.parametrize(("name", "path", "value"), BAD_CASES)
def test_malformed_fields_raise_protocol_error(name: str, path: tuple[str | int, ...], value: Any) -> None:
    with pytest.raises(ProtocolError):
        decode(_mutated(name, path, value))


def test_non_message_inputs() -> None:
    for data in (b"", b"\xc1", msgpack.packb([1, 2, 3]), msgpack.packb({1: 2}), msgpack.packb("hello"),
                 msgpack.packb({"v": 1}), msgpack.ExtType(5, b"x").data):
        with pytest.raises(ProtocolError):
            decode(data)
    with pytest.raises(ProtocolError):
        decode(msgpack.packb(msgpack.ExtType(5, b"abc")))
    with pytest.raises(ProtocolError):  # nesting far beyond the interpreter's recursion limit
        decode(b"[" * 100_000 + b"1" + b"]" * 100_000, "json")
    with pytest.raises(ProtocolError):
        decode(b"\x91" * 100_000 + b"\x01")
    with pytest.raises(ProtocolError):  # within the parsers' limits but deeper than the protocol allows
        decode(b"[" * 100 + b"1" + b"]" * 100, "json")
    with pytest.raises(ProtocolError):
        decode(b'{"v": NaN}', "json")
    with pytest.raises(ProtocolError):
        decode(b"\xff\xfe", "json")
    with pytest.raises(ProtocolError):
        decode("text", "json")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        decode(b"{}", "yaml")  # type: ignore[arg-type]


def test_encoder_refuses_invalid_messages() -> None:
    bad = Heatmap("V1", 0, 3, "full", np.zeros(2, np.uint8))
    with pytest.raises(ProtocolError):
        encode(bad)
    with pytest.raises(ProtocolError):
        encode("not a message")  # type: ignore[arg-type]


_json_values = st.recursive(
    # integers: the full msgpack range (packb itself rejects anything wider)
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=True) | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_raise_protocol_error_only(data: bytes) -> None:
    for fmt in ("msgpack", "json"):
        with contextlib.suppress(ProtocolError):
            decode(data, fmt)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NAMES), st.data())
def test_fuzzed_fields_raise_protocol_error_only(name: str, data: st.DataObject) -> None:
    """Replace one field anywhere in a valid message by an arbitrary value: valid or ProtocolError, nothing else."""
    wire = msgpack.unpackb((GOLDEN / f"{name}.msgpack").read_bytes(), raw=False)
    node: Any = wire
    for _ in range(data.draw(st.integers(0, 3))):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        children = [(k, v) for k, v in children if isinstance(v, dict | list) and v]
        if not children:
            break
        _, node = data.draw(st.sampled_from(children))
    keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    key = data.draw(st.sampled_from(keys)) if keys else 0
    value = data.draw(_json_values)
    if isinstance(node, dict) or node:
        node[key] = value
    blob = msgpack.packb(wire, use_bin_type=True)
    try:
        msg = decode(blob)
    except ProtocolError:
        return
    assert decode(encode(msg)) is not None  # whatever is accepted re-encodes and decodes again


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(NAMES), st.integers(0, 10_000), st.integers(0, 255))
def test_corrupted_bytes_raise_protocol_error_only(name: str, pos: int, byte: int) -> None:
    blob = bytearray((GOLDEN / f"{name}.msgpack").read_bytes())
    blob[pos % len(blob)] = byte
    with contextlib.suppress(ProtocolError):
        decode(bytes(blob))
    text = bytearray((GOLDEN / f"{name}.json").read_bytes())
    text[pos % len(text)] = byte
    with contextlib.suppress(ProtocolError):
        decode(bytes(text), "json")


def test_oversized_message_and_arrays() -> None:
    big = np.zeros(MAX_ARRAY_ELEMENTS + 1, np.uint8)
    with pytest.raises(ProtocolError):
        encode(Heatmap("V1", 0, len(big), "full", big))
    with pytest.raises(ProtocolError):
        decode(b"\x00" * (64 * 1024 * 1024 + 1))


def test_protocol_doc_shows_every_golden_vector() -> None:
    """docs/protocol.md has one ``### `name` `` JSON example per golden vector, equal to the file."""
    doc = (GOLDEN.parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    examples = doc.partition("## Examples\n")[2]
    assert examples, "docs/protocol.md has no examples section"
    shown = {}
    for part in examples.split("\n### `")[1:]:
        name, _, rest = part.partition("`")
        shown[name] = json.loads(rest.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert sorted(shown) == NAMES
    for name in NAMES:
        assert shown[name] == json.loads((GOLDEN / f"{name}.json").read_text())
        assert decode(json.dumps(shown[name]).encode(), "json") is not None
