"""Measuring a server process from outside: its resident memory and the files it holds."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from attrs import define, field

MiB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for {pid}")


def open_file_bytes(pid: int, under: Path) -> int:
    """Bytes in the regular files ``pid`` holds open below ``under`` (deleted ones too:
    a spooled temporary file is unlinked, yet it fills the disk while it is open)."""
    total = 0
    prefix = str(under)
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            if target.startswith(prefix):
                total += os.stat(fd).st_size
        except OSError:  # closed in between
            continue
    return total


@define
class Sampler:
    """Polls ``probe`` every ``interval`` seconds in a thread; keeps the first and the peak."""

    probe: Callable[[], int]
    interval: float = 0.005
    first: int = 0
    peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.probe()
            self.peak = max(self.peak, value)
            self.samples += 1
            time.sleep(self.interval)

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        self.first = self.peak = self.probe()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
