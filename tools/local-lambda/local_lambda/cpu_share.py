"""Lambda's CPU share and memory limit for a function's memory size, as a cgroup.

Lambda gives an execution environment CPU in proportion to its memory: 1,769 MB is one vCPU,
128 MB about 7.2 % of one, enforced as a CFS quota over 20 ms periods for everything in the
environment (the runtime and every extension share it). `CpuShare(128)` makes a cgroup with
that quota (and, when asked, that memory limit); a process started with `preexec_fn=share.join`
is in it from its first instruction, so what it spends before and after `exec` counts.

cgroup v1 (`cpu` and `memory` hierarchies, as on this machine) and v2 (`cpu.max`, `memory.max`)
are both handled. Where the cgroup cannot be made or written (not root, a read-only
/sys/fs/cgroup, no cpu controller), `CpuShare.make` returns None and says why.

Used by the local Lambda (`--memory`) and by make bench-cost's CPU-share mode.
"""

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 20_000
ONE_VCPU_MB = 1769


def quota_us(memory_mb):
    """The CFS quota per 20 ms period for `memory_mb`: 1,769 MB is the whole period (one vCPU)."""
    return max(1000, round(PERIOD_US * memory_mb / ONE_VCPU_MB))


class CpuShare:
    """One cgroup holding Lambda's CPU quota (and optionally its memory limit) for a memory size."""

    def __init__(self, memory_mb, dirs, procs_files):
        self.memory_mb, self.dirs, self._procs = memory_mb, dirs, procs_files

    @property
    def share(self):
        """The fraction of one CPU: 0.072 at 128 MB."""
        return quota_us(self.memory_mb) / PERIOD_US

    @classmethod
    def make(cls, memory_mb, name=None, limit_memory=False):
        """(CpuShare, None) or (None, why it cannot be made here)."""
        name = name or f"lambda-share-{os.getpid()}-{memory_mb}"
        try:
            if (CGROUP_ROOT / "cgroup.controllers").exists():
                return cls._make_v2(memory_mb, name, limit_memory), None
            return cls._make_v1(memory_mb, name, limit_memory), None
        except OSError as error:
            return None, f"cannot set a CPU quota in {CGROUP_ROOT} ({error.strerror or error}: needs root and a writable cgroup)"

    @classmethod
    def _make_v1(cls, memory_mb, name, limit_memory):
        cpu = CGROUP_ROOT / "cpu" / name
        cpu.mkdir(exist_ok=True)
        dirs = [cpu]
        try:
            (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(quota_us(memory_mb)))
            procs = [cpu / "cgroup.procs"]
            if limit_memory:
                memory = CGROUP_ROOT / "memory" / name
                memory.mkdir(exist_ok=True)
                dirs.append(memory)
                (memory / "memory.limit_in_bytes").write_text(str(memory_mb << 20))
                procs.append(memory / "cgroup.procs")
        except OSError:
            cls._remove(dirs)
            raise
        return cls(memory_mb, dirs, procs)

    @classmethod
    def _make_v2(cls, memory_mb, name, limit_memory):
        group = CGROUP_ROOT / name
        group.mkdir(exist_ok=True)
        try:
            (group / "cpu.max").write_text(f"{quota_us(memory_mb)} {PERIOD_US}")
            if limit_memory:
                (group / "memory.max").write_text(str(memory_mb << 20))
        except OSError:
            cls._remove([group])
            raise
        return cls(memory_mb, [group], [group / "cgroup.procs"])

    def delegate(self, uid, gid):
        """Lets processes of `uid` move themselves in (`join` runs after Popen drops to the user)."""
        for procs in self._procs:
            os.chown(procs, uid, gid)

    def join(self):
        """Moves the calling process into the cgroup: pass as Popen's preexec_fn."""
        for procs in self._procs:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

    def throttled_ms(self):
        """How long the quota held the cgroup's processes back so far (cpu.stat), or None."""
        try:
            stat = dict(line.split() for line in (self.dirs[0] / "cpu.stat").read_text().splitlines())
        except (OSError, ValueError):
            return None
        if "throttled_time" in stat:  # v1: nanoseconds
            return int(stat["throttled_time"]) / 1e6
        if "throttled_usec" in stat:  # v2
            return int(stat["throttled_usec"]) / 1e3
        return None

    def remove(self):
        """Removes the cgroup once its processes are gone (a cgroup with processes cannot go)."""
        self._remove(self.dirs)

    @staticmethod
    def _remove(dirs):
        for directory in dirs:
            try:
                directory.rmdir()
            except OSError:
                pass  # still holds a process (killed but not yet reaped): the kernel keeps it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
