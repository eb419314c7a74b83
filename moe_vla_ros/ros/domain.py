"""A ROS domain of its own for a self-contained graph (the closed-loop evaluation's simulator and
policy node): evaluations running at once on one machine, and a robot's own stack on it, never
see each other's topics.

DDS keeps graphs apart by domain id. `lease_domain()` takes the first id in EVALUATION_DOMAINS
that no other process on this machine holds: each id is a lock file in the temporary folder,
held (flock) for as long as the lease is open and released by the kernel when the holder exits,
so a crashed evaluation never leaves an id taken. Ids 200-232 stay clear of the usual robot
domains (0 and low numbers) and of the test runs' 100-199; 232 is the highest id Fast DDS maps
to valid UDP ports.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

EVALUATION_DOMAINS = range(200, 233)
MAX_DOMAIN_ID = 232


class DomainLease:
    """A domain id held until `close()` (or the end of a `with` block)."""

    def __init__(self, domain_id: int, lock_file) -> None:
        self.domain_id = domain_id
        self._lock_file = lock_file

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def __enter__(self) -> DomainLease:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def lock_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"moe_vla_ros-domains-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def lease_domain(domains: range = EVALUATION_DOMAINS, folder: Path | None = None) -> DomainLease:
    """The first domain id of `domains` that no other process holds; RuntimeError when all are held."""
    folder = folder or lock_folder()
    for domain_id in domains:
        lock_file = open(folder / f"domain-{domain_id}.lock", "w")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            continue
        return DomainLease(domain_id, lock_file)
    raise RuntimeError(f"every ROS domain id in {domains.start}..{domains.stop - 1} is held by another "
                       f"evaluation on this machine (lock files in {folder}); pass a domain id")
