"""Workaround for `mlflow models serve --workers N` (N > 1) answering keep-alive requests ~40 ms late on Linux.

With more than one worker, uvicorn binds the listening socket itself (`Config.bind_socket`) with protocol 0,
and asyncio only turns TCP_NODELAY on for accepted sockets that say IPPROTO_TCP; Nagle's algorithm then
holds the response body (a second small write after the headers) until the client's delayed ACK, ~40 ms
(Kludex/uvicorn#3149). Setting TCP_NODELAY on the listening socket fixes it: Linux copies the option to
every accepted socket. Used by putting this directory first on PYTHONPATH of the serving command:

    PYTHONPATH=benchmarks/nodelay mlflow models serve -m <uri> --workers 2 --env-manager local

Only the `uvicorn` process (which binds the socket) is patched; any other interpreter ignores it.
"""

import os
import sys

if os.path.basename(sys.argv[0] if sys.argv else "") == "uvicorn":
    import socket

    from uvicorn import config as _uvicorn_config

    _bind_socket = _uvicorn_config.Config.bind_socket

    def _bind_socket_nodelay(self):
        sock = _bind_socket(self)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    _uvicorn_config.Config.bind_socket = _bind_socket_nodelay
