"""Child processes of the sandbox: launch in their own session, capture output, signal the group."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Callable

from .util import now


def _real_ids(pid: int) -> tuple[int | None, int | None]:
    """The real uid and gid of a process, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])
    except (OSError, KeyError, ValueError):
        return None, None


class ManagedProcess:
    """One sandbox process (an extension or the runtime).

    Each is started with start_new_session=True, so it leads its own session and
    process group (pgid == pid) and every child it forks inherits that group:
    os.killpg(pgid, SIGSTOP) then freezes the whole tree and every thread in it,
    like Lambda's freezer does.
    """

    def __init__(
        self,
        label: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        on_line: Callable[["ManagedProcess", str, str, float], None],
        on_exit: Callable[["ManagedProcess"], None],
        run_as: tuple[int, int] | None = None,
        join: Callable[[], None] | None = None,
    ):
        """run_as: (uid, gid) to drop to before exec, with no supplementary groups. join: called
        in the child before exec (the CPU share's cgroup), so the whole process counts there."""
        self.label = label
        self.argv = argv
        self.output: list[list] = []  # [t, line]
        self.exit_code: int | None = None
        self.exit_time: float | None = None
        self._on_line = on_line
        self._on_exit = on_exit
        self.start_time = now()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            preexec_fn=join,
            **({"user": run_as[0], "group": run_as[1], "extra_groups": []} if run_as else {}),
        )
        self.pid = self.proc.pid
        # Popen returns once the child has exec'd, after any switch of user: what it runs as.
        self.uid, self.gid = _real_ids(self.pid)
        self.pgid = self.proc.pid  # session leader => its own process group
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, "stdout"), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, "stderr"), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    # -- output / exit -------------------------------------------------
    def _read(self, pipe, stream: str) -> None:
        for raw in iter(pipe.readline, b""):
            t = now()
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.output.append([t, line])
            try:
                self._on_line(self, stream, line, t)
            except Exception:  # never let a callback kill the reader
                pass
        pipe.close()

    def _wait(self) -> None:
        code = self.proc.wait()
        self.exit_time = now()
        self.exit_code = code
        self._on_exit(self)

    def join_output(self, timeout: float = 1.0) -> None:
        for t in self._readers:
            t.join(timeout)

    @property
    def alive(self) -> bool:
        return self.exit_code is None

    def wait(self, timeout: float) -> bool:
        self._waiter.join(timeout)
        return not self._waiter.is_alive()

    # -- signals -------------------------------------------------------
    def signal_group(self, sig: int) -> bool:
        """Signal the whole process group (also reaches children left after the leader exited)."""
        try:
            os.killpg(self.pgid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def group_pids(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            st = read_stat(int(entry))
            if st and st["pgrp"] == self.pgid:
                pids.append(int(entry))
        return sorted(pids)

    def group_states(self) -> dict:
        """{pid: {"state": S, "threads": {state: count}}} from /proc (used to prove a freeze)."""
        out = {}
        for pid in self.group_pids():
            st = read_stat(pid)
            if not st:
                continue
            threads: dict[str, int] = {}
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    tst = read_stat(pid, int(tid))
                    if tst:
                        threads[tst["state"]] = threads.get(tst["state"], 0) + 1
            except OSError:
                pass
            out[str(pid)] = {"comm": st["comm"], "state": st["state"], "threads": threads}
        return out

    def max_rss_mb(self) -> int | None:
        """Peak resident set size (VmHWM) of the group leader, for platform.report."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return max(1, int(line.split()[1]) // 1024)
        except OSError:
            return None
        return None


def read_stat(pid: int, tid: int | None = None) -> dict | None:
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    # comm is in parentheses and may contain spaces: split after the last ')'.
    lpar, rpar = data.find("("), data.rfind(")")
    rest = data[rpar + 2 :].split()
    try:
        return {"comm": data[lpar + 1 : rpar], "state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2])}
    except (IndexError, ValueError):
        return None


SIGNAL_NAMES = {signal.SIGSTOP: "SIGSTOP", signal.SIGCONT: "SIGCONT", signal.SIGTERM: "SIGTERM", signal.SIGKILL: "SIGKILL"}


def pid_of_tcp_client(client_port: int, server_port: int, candidates: list[int]) -> int | None:
    """The pid (among candidates) holding the client end of a loopback TCP connection to
    server_port from client_port: which runtime worker process made a Runtime API call.
    Reads /proc/net/tcp for the socket's inode, then the candidates' /proc/PID/fd links."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 10:
                continue
            try:
                local_port = int(cols[1].rsplit(":", 1)[1], 16)
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            except (IndexError, ValueError):
                continue
            if local_port == client_port and remote_port == server_port and cols[9] != "0":
                inode = cols[9]
                break
        if inode:
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None
