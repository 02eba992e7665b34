"""One grid process per results folder at a time."""

from __future__ import annotations

import fcntl

from bench.core.errors import BenchError
from bench.store.results import Store


class StoreLock:
    """One grid process per results folder at a time (released by the kernel even on kill -9)."""

    def __init__(self, store: Store):
        self.path = store.root / ".lock"

    def __enter__(self):
        self.handle = open(self.path, "w")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise BenchError(f"another bench run is writing to {self.path.parent}", "wait for it to finish or use another --results folder") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
