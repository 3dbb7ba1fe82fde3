"""Local TCP ports."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now. Only this port: Linux gives bind(0) odd ports and outgoing
    connections even ones, so the port after this one may be a client socket's."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False
