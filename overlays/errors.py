"""The exception tree of ``overlays``.

::

    OverlayError                 base of everything raised on purpose by this package
    ├── ProtocolError (ValueError)   a message violates the overlay protocol: bytes that are not
    │                                msgpack/JSON, wrong types, unknown or missing fields, sizes or
    │                                limits exceeded, an unsupported version. The codec raises
    │                                this and nothing else.
    └── DefectError (ValueError)     bad extraction/tracking configuration or an unknown defect id

Adapters (``xrserver``) turn a ProtocolError into a close code / HTTP 400 with its message.
"""

from __future__ import annotations


class OverlayError(Exception):
    """Base of the overlays errors."""


class ProtocolError(OverlayError, ValueError):
    """A message violates the overlay protocol; the message names the field (``defects[3].area_mm2``)."""


class DefectError(OverlayError, ValueError):
    """Invalid defect extraction / tracking configuration, or an unknown defect id."""
