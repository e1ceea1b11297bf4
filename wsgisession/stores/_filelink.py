"""Create a file whole under a name that must be free, with no lock and no rename.

Where the system allows it (Linux: ``O_TMPFILE`` and ``/proc``), the file
store writes a new record into an anonymous file in the record's directory
and then links it to its name. ``link`` fails when the name exists, so the
record appears whole or not at all and never replaces anything, across
processes, without the shard lock; a writer that dies before the link
leaves nothing behind (the system frees the anonymous file). That is three
system calls less than a locked check, a temporary file and a rename.
"""

from __future__ import annotations

import errno
import os
from enum import Enum

__all__ = ["Linked", "link_new_file", "linking_available"]

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_ANONYMOUS = _O_TMPFILE | os.O_WRONLY | _O_NOFOLLOW
_FD_LINKS = "/proc/self/fd/"
# What open(O_TMPFILE) or the link through /proc raise where they cannot
# work: a file system without O_TMPFILE, an old kernel, no /proc.
_UNSUPPORTED = frozenset(
    {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.EXDEV, errno.EPERM}
)


def linking_available() -> bool:
    """Whether this system offers ``O_TMPFILE`` and ``/proc/self/fd`` links."""
    return bool(_O_TMPFILE) and os.path.isdir(_FD_LINKS)


class Linked(Enum):
    """What :func:`link_new_file` did."""

    CREATED = "created"
    TAKEN = "taken"  # the name exists: nothing was written
    UNSUPPORTED = "unsupported"  # this directory cannot do it: use the slow way


def link_new_file(directory: str, path: str, data: bytes) -> Linked:
    """Write ``data`` as a new file (mode 0600) at ``path`` inside ``directory``.

    Raises ``FileNotFoundError`` when ``directory`` is missing (the caller
    creates it and tries again) and ``OSError`` on other failures.
    """
    try:
        fd = os.open(directory, _O_ANONYMOUS, 0o600)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return Linked.UNSUPPORTED
        raise
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        return _link(fd, path)
    finally:
        os.close(fd)


def _link(fd: int, path: str) -> Linked:
    """Link the open unnamed file ``fd`` to ``path``."""
    try:
        # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N: os.link uses linkat
        # (not link, which would not follow) only when given a directory fd;
        # the source path is absolute, so that fd is otherwise ignored.
        os.link(_FD_LINKS + str(fd), path, src_dir_fd=fd, follow_symlinks=True)
    except FileExistsError:
        return Linked.TAKEN
    except OSError as exc:
        # ENOENT: a /proc without these links (some sandboxes).
        if exc.errno in _UNSUPPORTED or exc.errno == errno.ENOENT:
            return Linked.UNSUPPORTED
        raise
    return Linked.CREATED
