"""Advisory file locks (fcntl.flock) for runs sharing an output root.

flock locks belong to the open file and vanish when the process dies, even
under SIGKILL, so a crashed run never leaves a stale lock behind. The lock
file holds the owner's pid only for the refusal message. Lock files are
removed on release; an acquirer re-checks that the path still names the
inode it locked, so removal cannot let two holders in.

Layout (OUT = output root):
  OUT/_locks/<source>-<date>.lock   one scheduled run per source and date
  OUT/_locks/run-<run_id>.lock      the live owner of OUT/_staging/<run_id>/
  OUT/_locks/commit.lock            one commit (or recovery) at a time per root
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager


class Busy(Exception):
    """The lock is held by another live process."""

    def __init__(self, path: str, pid: str | None):
        super().__init__(f"{path} is held by pid {pid or '?'}")
        self.path, self.pid = path, pid


def lock_dir(out: str) -> str:
    return os.path.join(out, "_locks")


def _holder(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


class Lock:
    def __init__(self, path: str, keep_file: bool = False):
        self.path, self.keep_file = path, keep_file
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> "Lock":
        """Take the lock, waiting up to `wait` seconds (inf = forever); Busy otherwise."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait == float("inf") else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise Busy(self.path, _holder(self.path)) from None
                time.sleep(0.05)
                continue
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed by its previous holder after we opened it
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return self

    def release(self) -> None:
        if self.fd is None:
            return
        if not self.keep_file:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def run_lock(out: str, run_id: str) -> Lock:
    return Lock(os.path.join(lock_dir(out), f"run-{run_id}.lock"))


def date_lock(out: str, source: str, date: str) -> Lock:
    return Lock(os.path.join(lock_dir(out), f"{source}-{date}.lock"))


@contextmanager
def commit_lock(out: str):
    """Serialises commits, recoveries and pruning of one output root."""
    lk = Lock(os.path.join(lock_dir(out), "commit.lock"), keep_file=True).acquire(wait=float("inf"))
    try:
        yield lk
    finally:
        lk.release()


def try_lock(lock: Lock) -> bool:
    try:
        lock.acquire()
        return True
    except Busy:
        return False
