"""The Python client of the overlay protocol: connect, authenticate, subscribe, keep the current state.

>>> async with XrClient("ws://127.0.0.1:8765/ws", token, role="supervisor") as client:
...     async for msg in client:            # every message, after it is applied to client.state
...         print(client.state.defects)
"""

from clients.python.client import ClientError, XrClient
from clients.python.state import ClientState

__all__ = ["ClientError", "ClientState", "XrClient"]
