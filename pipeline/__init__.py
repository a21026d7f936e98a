"""Frames, sources (the digital twin first), and later the models and fusion.

Sans-I/O core: never imports asyncio, websockets or aiortc.
"""

from pipeline.frames import Frame, FrameSet

__all__ = ["Frame", "FrameSet"]
