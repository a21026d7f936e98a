"""Regenerate the golden vectors and the examples section of docs/protocol.md (run after a
deliberate protocol change, then review the diff):

    .venv/bin/python tests/overlays/make_golden.py
"""

from __future__ import annotations

import json
from pathlib import Path

from overlays.codec import encode
from overlays.examples import example_messages

GOLDEN = Path(__file__).resolve().parent / "golden"
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
EXAMPLES_HEADING = "## Examples\n"


def examples_markdown() -> str:
    """One ``### name`` section with the pretty-printed JSON mirror per golden vector."""
    parts = []
    for name in sorted(example_messages()):
        wire = json.loads((GOLDEN / f"{name}.json").read_text(encoding="ascii"))
        parts.append(f"### `{name}`\n\n```json\n{json.dumps(wire, indent=2)}\n```\n")
    return "\n".join(parts)


def doc_with_examples(doc: str) -> str:
    """``doc`` with everything after the examples' intro paragraph replaced by :func:`examples_markdown`."""
    head, sep, tail = doc.partition(EXAMPLES_HEADING)
    if not sep:
        raise SystemExit(f"{DOC} has no {EXAMPLES_HEADING!r}")
    intro = tail.split("\n### ", 1)[0].rstrip("\n")
    return f"{head}{sep}{intro}\n\n{examples_markdown()}"


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name, msg in example_messages().items():
        (GOLDEN / f"{name}.msgpack").write_bytes(encode(msg, "msgpack"))
        (GOLDEN / f"{name}.json").write_bytes(encode(msg, "json") + b"\n")
        print(name)
    DOC.write_text(doc_with_examples(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(DOC)


if __name__ == "__main__":
    main()
