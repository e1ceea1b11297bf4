"""Loopback TCP ports for the test servers: a free one, and whose listener holds one.

A port found free may be taken by another process (another pytest run, any
program) before the server binds it, and a connection that succeeds may
reach that stranger: the servers' readiness asks the kernel which process
holds the listening socket (``/proc/net/tcp`` and ``/proc/PID/fd``).
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["dead_port", "free_port", "listening_sockets", "listens"]

#: Every port free_port() has handed out: servers made together (a
#: cluster's nodes) are started only after all their ports are picked, and
#: the system may offer a port again as soon as its probe socket closes.
_handed_out: set[int] = set()

_LOWEST_PORT = 10000
_PORTS = random.Random()
#: The state column of /proc/net/tcp for a listening socket (TCP_LISTEN).
_LISTEN = "0A"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now, never one handed out
    before, and outside the range the system picks outgoing connections'
    ports from: such a connection could take the port between this probe
    and the server's bind."""
    below = _outgoing_ports_start()
    while True:
        port = _PORTS.randrange(_LOWEST_PORT, below) if below > _LOWEST_PORT else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use, or lingering after a close
                continue
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@contextmanager
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections for the whole block.

    A port merely found free may be taken meanwhile by another run's server,
    and a test meant to fail to connect would use, or write into, that
    stranger's store. This one stays bound, never listening, and without
    ``SO_REUSEADDR``: no other process can listen on it until the block ends.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        while True:
            try:
                holder.bind(("127.0.0.1", free_port()))
                break
            except OSError:  # taken since the probe: another port
                continue
        yield holder.getsockname()[1]


def _outgoing_ports_start() -> int:
    """The first port of the system's range for outgoing connections."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def listening_sockets(port: int, host: str | None = None) -> set[int]:
    """The inodes of the sockets listening on TCP ``port``: on ``host``
    (an IPv4 address) only, or on any address, IPv4 or IPv6, when None."""
    families = [socket.AF_INET] if host else [socket.AF_INET, socket.AF_INET6]
    try:
        found = [entry for family in families for entry in _diagnosed(family)]
    except OSError:  # no netlink here (a sandbox): the slower /proc tables
        found = _proc_listeners(families)
    return {
        inode
        for address, listened, inode in found
        if listened == port and host in (None, address)
    }


Listener = tuple[str, int, int]  # address, port, socket inode
_SOCK_DIAG = 4  # NETLINK_SOCK_DIAG
_BY_FAMILY = 20  # SOCK_DIAG_BY_FAMILY
_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_DONE, _ERROR = 3, 2  # NLMSG_DONE, NLMSG_ERROR
_TCP_LISTEN = 10


def _diagnosed(family: int) -> list[Listener]:
    """The kernel's list of listening TCP sockets (sock_diag): a fraction of
    a millisecond, where /proc/net/tcp lists every connection (13 ms with
    the 1,250 a busy test machine had)."""
    request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
    request += bytes(48)  # inet_diag_sockid: any address and port
    header = struct.pack("=IHHII", 16 + len(request), _BY_FAMILY, _DUMP_REQUEST, 1, 0)
    size = 4 if family == socket.AF_INET else 16
    found: list[Listener] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _SOCK_DIAG) as sock:
        sock.send(header + request)
        while True:
            data, offset = sock.recv(1 << 16), 0
            while offset < len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == _DONE:
                    return found
                if kind == _ERROR:
                    errno = -struct.unpack_from("=i", data, offset + 16)[0]
                    raise OSError(errno, os.strerror(errno))
                body = offset + 16  # inet_diag_msg after the nlmsghdr
                address = socket.inet_ntop(family, data[body + 8 : body + 8 + size])
                port = struct.unpack_from("!H", data, body + 4)[0]
                found.append(
                    (address, port, struct.unpack_from("=I", data, body + 68)[0])
                )
                offset += (length + 3) & ~3


def _proc_listeners(families: Sequence[int]) -> list[Listener]:
    """The listening TCP sockets as /proc/net/tcp (and tcp6) list them."""
    found: list[Listener] = []
    for family in families:
        table = "/proc/net/tcp" if family == socket.AF_INET else "/proc/net/tcp6"
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:  # no IPv6 on this system
            continue
        for fields in (line.split() for line in lines):
            if fields[3] != _LISTEN:
                continue
            hex_address, hex_port = fields[1].split(":")
            # The kernel prints an address as 32-bit words in host byte order.
            words = [
                int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)
            ]
            packed = struct.pack(f"={len(words)}I", *words)
            found.append(
                (socket.inet_ntop(family, packed), int(hex_port, 16), int(fields[9]))
            )
    return found


def listens(pid: int, host: str, port: int) -> bool:
    """Whether process ``pid`` itself holds a socket listening on ``host:port``."""
    inodes = listening_sockets(port, host)
    if not inodes:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    fd_dir = f"/proc/{pid}/fd"
    try:
        descriptors = os.listdir(fd_dir)
    except OSError:  # the process has ended
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(f"{fd_dir}/{descriptor}") in wanted:
                return True
        except OSError:  # closed since the listing
            continue
    return False
