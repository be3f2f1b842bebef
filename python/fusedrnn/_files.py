"""Writing files so that nothing a user owns is lost and nothing half-written is ever read.

``atomic_path(target)`` yields a temporary path beside ``target`` for the caller to write by any
means (NumPy, gensim, matplotlib, plain ``open``). When the block ends without an error, the file
is flushed to disk and renamed over ``target`` in one step (``os.replace``): ``target`` is either
its old self or the whole new file, also after a crash or a kill -9. On an error the temporary is
removed and ``target`` is untouched. A symbolic link is written through (the file it names is
replaced, the link stays). ``atomic_folder(target)`` does the same for a folder: the caller fills
an empty temporary folder, which becomes ``target`` only when complete (an existing ``target`` is
moved aside and deleted only after that).

Temporaries are named ``.<target name>.<12 hex digits>.tmp`` and their writer holds an exclusive
``flock`` on them while it lives. A writer killed midway cannot delete its temporary, but the kernel
drops its lock: every later write of the same target first deletes that target's temporaries whose
lock it can take, so it never touches a live writer's file (``remove_stale``).

``check_output_file`` and ``check_output_folder`` refuse, before any work, an output that is (or
would replace) one of the command's inputs or that cannot be written: a ``ValueError`` naming the
option. ``write_checksums``/``verify_checksums``: a folder's ``checksums.json`` (sha256 of each file)
and its check on load, naming the damaged file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import stat
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

CHECKSUMS = "checksums.json"


def _real(path) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def _temporary_of(target: Path, name: str) -> bool:
    """Whether ``name`` (in target's folder) is one of target's temporaries."""
    prefix = f".{target.name}."
    if not (name.startswith(prefix) and name.endswith(".tmp")):
        return False
    middle = name[len(prefix):-len(".tmp")]
    return len(middle) == 12 and all(c in "0123456789abcdef" for c in middle)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


# Filesystems without flock (some NFS, Lustre and FUSE mounts) answer with one of these: writes go
# on unlocked there, and remove_stale, which cannot take a lock either, deletes nothing.
_NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


def _create_locked(target: Path, folder: bool) -> tuple[Path, int]:
    """A new temporary of ``target`` (a file, or a folder), locked -> (its path, the locked fd)."""
    while True:
        path = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        if folder:
            os.mkdir(path)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue  # a cleaner took it between the two calls
        else:  # 0o666 through the umask: the permissions any new file of the user gets
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            # A cleaner that found it before the lock holds the lock and deletes it: then wait for
            # the lock, see the path gone and take another name.
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            if error.errno in _NO_LOCKS:
                return path, fd
            os.close(fd)
            shutil.rmtree(path, ignore_errors=True) if folder else os.unlink(path)
            raise
        if _same_file(fd, path):
            return path, fd
        os.close(fd)


def remove_stale(target) -> int:
    """Deletes the temporaries of ``target`` whose writer is gone (their lock is free) -> how many."""
    target = _real(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not _temporary_of(target, name):
            continue
        path = target.parent / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone meanwhile, a link, or not ours to read
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            if not _same_file(fd, path):
                continue
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _fsync_directory(directory) -> None:
    """Makes a rename in ``directory`` durable (POSIX); a no-op where directories cannot be opened."""
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


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_directory(root)


@contextlib.contextmanager
def atomic_path(target) -> Iterator[Path]:
    """Yields a temporary path beside ``target`` that replaces ``target`` when the block succeeds."""
    target = _real(target)
    remove_stale(target)
    path, fd = _create_locked(target, folder=False)
    with contextlib.suppress(OSError):  # a replaced file keeps its permissions (a private one stays private)
        os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode))
    try:
        yield path
        os.fsync(fd)  # the file's data, whichever handle wrote it
        os.replace(path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)  # drops the lock only after the rename: no cleaner sees it unlocked before
    _fsync_directory(target.parent)


def write_bytes(target, data: bytes) -> None:
    with atomic_path(target) as path:
        path.write_bytes(data)


def write_text(target, text: str) -> None:
    """Writes ``text`` as UTF-8, atomically."""
    write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(target, overwrite: bool = False) -> Iterator[Path]:
    """Yields a new empty folder beside ``target`` that becomes ``target`` when the block succeeds.
    An existing ``target`` that holds files is replaced only if ``overwrite`` (and deleted after);
    otherwise, or if the folder cannot take its place, the finished folder is kept beside it and an
    OSError says where: finished work is never deleted."""
    target = _real(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    path, fd = _create_locked(target, folder=True)
    try:
        try:
            yield path
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        _fsync_tree(path)
        try:
            _move_into_place(path, target, overwrite)
        except OSError as error:
            kept = target.parent / f"{target.name}.new-{secrets.token_hex(3)}"
            os.rename(path, kept)
            raise OSError(f"{target}: the new folder is complete but could not take this place ({error}); "
                          f"it is kept as {kept}") from None
        _fsync_directory(target.parent)
    finally:
        os.close(fd)


def _move_into_place(new: Path, target: Path, overwrite: bool) -> None:
    if not (overwrite and target.is_dir()):
        os.rename(new, target)  # refuses a target folder that holds files
    elif _exchange(new, target):  # one atomic step: target is the old folder or the new one, never neither
        shutil.rmtree(new, ignore_errors=True)  # the old one, now
    else:
        _swap_in(new, target)


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths in one step (Linux's renameat2 with RENAME_EXCHANGE) -> False where the
    system or the filesystem cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap_in(new: Path, target: Path) -> None:
    """Replaces the folder ``target`` by ``new`` in two renames, where they cannot be one. The old
    folder is locked and renamed as a temporary first, so a run killed between the two renames
    leaves it for the next write of ``target`` to delete, never a folder of mixed files."""
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        old = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        os.rename(target, old)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        os.close(fd)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(folder, names: Iterable[str]) -> None:
    """Writes ``folder/checksums.json``: the sha256 of each named file of ``folder`` (write it last)."""
    folder = Path(folder)
    sums = {name: sha256(folder / name) for name in names}
    write_text(folder / CHECKSUMS, json.dumps({"sha256": sums}, indent=1) + "\n")


def verify_checksums(folder, required: Iterable[str]) -> None:
    """Checks every file ``folder/checksums.json`` lists, which must include ``required``; a
    ValueError names a damaged or missing one. A folder without checksums.json (saved by fusedrnn
    0.1.0) loads with a warning: its files cannot be checked."""
    folder = Path(folder)
    listing = folder / CHECKSUMS
    if not listing.is_file():
        warnings.warn(f"{folder}: no {CHECKSUMS} (saved by fusedrnn 0.1.0), so its files cannot be checked "
                      "for damage; save it again to add one", stacklevel=3)
        return
    try:
        sums = json.loads(listing.read_text(encoding="utf-8"))["sha256"]
        items = sorted(sums.items())
        if not all(isinstance(n, str) and isinstance(s, str) for n, s in items):
            raise TypeError("not a map of names to digests")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{listing}: damaged ({error})") from None
    unlisted = sorted(set(required) - set(sums))
    if unlisted:
        raise ValueError(f"{listing}: damaged (it does not list {', '.join(unlisted)})")
    for name, digest in items:
        path = folder / name
        if os.sep in name or name.startswith(".") or not path.is_file():
            raise ValueError(f"{path}: missing (listed in {CHECKSUMS}); the folder is incomplete")
        if sha256(path) != digest:
            raise ValueError(f"{path}: damaged (its sha256 differs from the one in {CHECKSUMS}); "
                             f"restore or retrain the model")


def _writable_folder(folder: Path, what: str) -> None:
    """A probe: creates and deletes a temporary in ``folder`` (os.access cannot see every reason)."""
    try:
        path, fd = _create_locked(folder / "probe", folder=False)
        os.close(fd)
        os.unlink(path)
    except OSError as error:
        raise ValueError(f"{what}: cannot write in {folder} ({error.strerror})") from None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _files_of(given) -> Iterator[str]:
    """The file ``given``, or every file under the folder ``given``; nothing if it does not exist."""
    if os.path.isdir(given):
        for root, _, names in os.walk(given):
            yield from (os.path.join(root, name) for name in names)
    elif os.path.exists(given):
        yield os.fspath(given)


def check_output_file(output, inputs: Iterable = (), what: str = "--output") -> Path:
    """Refuses, before any work, an output file that is a folder, sits in a missing folder, is an
    existing file among ``inputs`` (files, or folders whose files it must not replace) or cannot be
    written -> the path to write. Raises ValueError naming ``what``."""
    output = Path(output)
    real = _real(output)
    if real.is_dir():
        raise ValueError(f"{what} {output}: is a folder; name a file")
    if not real.parent.is_dir():
        raise ValueError(f"{what} {output}: the folder {output.parent} does not exist")
    if real.exists():
        for given in inputs:
            if given is not None and any(os.path.samefile(real, f) for f in _files_of(given)):  # links too
                raise ValueError(f"{what} {output}: is the input {given}; writing it would destroy the input")
    if real.exists() and not os.access(real, os.W_OK):
        raise ValueError(f"{what} {output}: the file is not writable")
    _writable_folder(real.parent, f"{what} {output}")
    return output


def check_folder_writable(folder, what: str) -> Path:
    """Creates ``folder`` (and its parents) if needed and checks that files can be written in it,
    before any work -> the path. Raises ValueError naming ``what``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{what} {folder}: is a file; name a folder") from None
    except OSError as error:
        raise ValueError(f"{what} {folder}: cannot create it ({error.strerror})") from None
    _writable_folder(folder, f"{what} {folder}")
    return folder


def check_output_folder(output, inputs: Iterable = (), overwrite: bool = False, what: str = "--out") -> Path:
    """Refuses, before any work, an output folder that is a file, holds (or is) one of ``inputs``,
    or holds files when not ``overwrite``; creates its parent folders and checks they are writable
    -> the path. Raises ValueError naming ``what``."""
    output = Path(output)
    real = _real(output)
    if real.exists() and not real.is_dir():
        raise ValueError(f"{what} {output}: is a file; name a folder")
    for given in inputs:
        if given is not None and os.path.exists(given) and _inside(_real(given), real):
            raise ValueError(f"{what} {output}: holds the input {given}; replacing the folder would delete it")
    for mine, what_it_is in ((Path.cwd(), "the working folder"), (Path.home(), "your home folder")):
        if _inside(_real(mine), real):
            raise ValueError(f"{what} {output}: holds {what_it_is}; name a folder of its own")
    if real.is_dir() and any(real.iterdir()) and not overwrite:
        raise ValueError(f"{what} {output}: the folder already holds files; name a new folder, or pass "
                         "--overwrite to replace it (once the new one is complete)")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{what} {output}: cannot create {output.parent} ({error.strerror})") from None
    _writable_folder(real.parent, f"{what} {output}")
    return output


def save_figure(fig, path, dpi: int = 100) -> None:
    """Saves a matplotlib figure atomically, in the format its suffix names (PNG without one)."""
    kind = Path(path).suffix[1:].lower() or "png"
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format=kind, dpi=dpi)
