"""Writing files: never half-written, never over a file that appeared meanwhile, never through a
symlink, never outside the folder a writer owns.

Every writer of the package goes through here (data sets, review, export, labels, sidecars):

- temporary files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name in the
  target's own directory (:func:`write_temporary`, ``tempfile.mkstemp``), written completely and
  fsynced, then renamed or linked to their name; a planted symlink at a guessable temporary name
  cannot redirect a write;
- a target that is itself a symlink is refused with one line (:class:`UnsafePathError`), never
  written through or silently replaced;
- with ``root=``, the target's directory is resolved (symlinks and ``..`` followed) and must lie
  inside ``root``, itself resolved: a split folder that is a symlink leading out is refused
  (O_NOFOLLOW guards only the last path component);
- :func:`create_exclusive` publishes a new file only if its name is still free (a hard link, or
  on file systems without them an exclusive reservation then a rename);
- :func:`publish_group` puts several complete files in place together, every target checked
  before the first rename (an export's staged model, sidecar and reader).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from cube_detect.errors import CubeDetectError


class UnsafePathError(CubeDetectError):
    """A write that would go through a symlink or land outside the folder it belongs to."""


#: What os.link answers on file systems without hard links (FAT, some network mounts).
NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


def file_mode() -> int:
    """0666 less the process's umask (read and restored: os has no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(directory: os.PathLike) -> None:
    """Make a rename or link in ``directory`` durable (best effort: not every file system can)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unlink_quietly(path: os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def check_target(path: os.PathLike, root: Optional[os.PathLike] = None) -> Path:
    """``path`` if it may be written: not a symlink, and with ``root``, its resolved directory
    inside the resolved ``root``. Raises :class:`UnsafePathError` naming the path."""
    path = Path(path)
    if path.is_symlink():
        raise UnsafePathError(f"{path}: is a symlink (to {os.readlink(path)}); not written through it")
    if root is not None:
        base = Path(root).resolve()
        directory = path.parent.resolve()
        if directory != base and base not in directory.parents:
            raise UnsafePathError(f"{path}: its folder resolves to {directory}, outside {base}; not written")
    return path


def write_all(handle, data: bytes) -> None:
    """Write, flush and fsync: the bytes are on disk when this returns."""
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def write_temporary(directory: os.PathLike, stem: str, data: bytes, mode: Optional[int] = None) -> Path:
    """A complete, fsynced hidden temporary file in ``directory`` (``.STEM.XXXXXXXX.tmp``),
    created exclusively (never an existing file or a symlink), with ``mode`` (default: what a
    plain ``open()`` gives under the umask). Removed on error."""
    fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=directory)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write_all(handle, data)
        os.chmod(tmp, file_mode() if mode is None else mode)  # mkstemp makes 0600
    except BaseException:
        unlink_quietly(tmp)
        raise
    return tmp


def atomic_write_bytes(path: os.PathLike, data: bytes, root: Optional[os.PathLike] = None,
                       before_replace: Optional[Callable[[], None]] = None) -> None:
    """Replace ``path`` with ``data`` in one step (temporary file + rename): readers see the old
    file or the new one, never a part. Refuses a symlink target and, with ``root``, a target
    outside it (see :func:`check_target`). ``before_replace``: called once the temporary file is
    complete, just before the rename (e.g. to check the target did not change meanwhile); an
    exception it raises aborts the write, the target untouched and the temporary file removed."""
    path = check_target(path, root)
    tmp = write_temporary(path.parent, path.name, data)
    try:
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        unlink_quietly(tmp)
    fsync_dir(path.parent)


def atomic_write_text(path: os.PathLike, text: str, root: Optional[os.PathLike] = None,
                      before_replace: Optional[Callable[[], None]] = None) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), root, before_replace)


def publish_exclusive(tmp: os.PathLike, final: os.PathLike) -> None:
    """Give the complete file ``tmp`` the name ``final``, failing if ``final`` exists (even as a
    dangling symlink). Raises FileExistsError, and leaves ``final`` untouched, when it is taken."""
    try:
        os.link(tmp, final)  # link() never follows or replaces an existing name at final
    except OSError as exc:
        if exc.errno == errno.EEXIST or exc.errno not in NO_HARDLINKS:
            raise
        # No hard links here: reserve the name exclusively, then rename the complete file onto
        # the reservation. Readers may see an empty file for that instant, never a partial one.
        fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o644)
        os.close(fd)
        os.replace(tmp, final)


def publish_group(moves: Sequence[Tuple[os.PathLike, os.PathLike]],
                  before_renames: Optional[Callable[[], None]] = None) -> List[Path]:
    """Rename complete files into place as a group, in the order given (``(source, target)``, each
    source in the target's folder): every target checked first (:func:`check_target`; and not a
    folder, which a rename could not replace half-way through the group), every source fsynced,
    then ``before_renames`` (once nothing can refuse the group any more), the renames, and the
    folders fsynced. Nothing is renamed if a target is refused. Returns the targets."""
    pairs = [(Path(source), check_target(target)) for source, target in moves]
    for _, target in pairs:
        if target.is_dir():
            raise UnsafePathError(f"{target}: is a folder; none of the {len(pairs)} files was put in place")
    for source, _ in pairs:  # on disk before any rename: a power cut cannot publish an empty file
        fd = os.open(source, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if before_renames is not None:
        before_renames()
    for source, target in pairs:
        os.replace(source, target)
    for folder in sorted({target.parent for _, target in pairs}):
        fsync_dir(folder)
    return [target for _, target in pairs]


def create_exclusive(path: os.PathLike, data: bytes, root: Optional[os.PathLike] = None,
                     mode: Optional[int] = None) -> bool:
    """Write a new file ``path``, never over one that exists or appears meanwhile: False (and
    nothing written) if the name is taken."""
    path = check_target(path, root)
    tmp = write_temporary(path.parent, path.name, data, mode)
    try:
        publish_exclusive(tmp, path)
    except FileExistsError:
        return False
    finally:
        unlink_quietly(tmp)
    fsync_dir(path.parent)
    return True
