"""The processes one `fedtriage coordinator start` or `node start` runs, and their record.

The command starts each process in a session of its own (so a Ctrl-C reaches the command
alone, which then stops them in order), writes every process id into `processes.json` in
its state folder, and stays in the foreground until it is told to stop or one of them
ends. `stop` and `status`, run later from another shell, read that record; a process id
counts as ours only while the process has the start time recorded with it (a reused id is
left alone). Every stop is by process id: SIGTERM, a grace period, then SIGKILL.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from fedtriage.errors import ConfigError, FederationFailed, Interrupted

RECORD_FILE = "processes.json"
LOG_DIR = "logs"
# Lines of a process's log shown when it fails.
_TAIL_LINES = 12
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class ProcessSpec:
    """One process: its command line, and how to tell it is up or has failed for good."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    # Up once its log has a line matching this (or, with `ready_port`, once the port accepts).
    ready_line: str | None = None
    ready_port: tuple[str, int] | None = None
    # Log lines (regex) that mean it cannot go on, with what to tell the user (while it starts,
    # and for a process that is not restarted, for as long as it runs).
    fatal_lines: tuple[tuple[str, str], ...] = ()
    # Log lines (regex; group 1 is printed) the command prints while it watches, for the operator.
    relay_line: str | None = None
    # A process the others can do without (an MLflow server: runs buffer their tracking): once
    # up, if it ends it is started again after this many seconds instead of stopping the group.
    restart_after_s: float | None = None
    # With `restart_after_s`: start it again as it was first started, waiting until it is up and
    # stopping the group on a fatal line (a SuperNode that the restarted coordinator refuses).
    restart_must_come_up: bool = False


@dataclass
class RecordedProcess:
    name: str
    pid: int
    # The process's start time (clock ticks after boot, /proc/PID/stat): with the id, who it is.
    started: int
    command: list[str]
    log: str


@dataclass
class GroupRecord:
    """`processes.json`: the supervising command and what it started."""

    role: str
    supervisor_pid: int
    supervisor_started: int
    processes: list[RecordedProcess]
    ready: bool = False
    details: dict[str, str] = field(default_factory=dict)


def read_record(state_dir: Path) -> GroupRecord | None:
    path = state_dir / RECORD_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return GroupRecord(
            **{**document, "processes": [RecordedProcess(**entry) for entry in document["processes"]]}
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ConfigError("--state", f"{path} is not a record `fedtriage` wrote: {err}") from err


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot); None if it is gone or a zombie."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def is_running(pid: int, started: int) -> bool:
    """Whether process `pid` still runs and is the one that started at `started`."""
    return start_time(pid) == started


def live_record(state_dir: Path) -> GroupRecord | None:
    """The record of a group whose supervising command still runs, else None."""
    record = read_record(state_dir)
    if record is None or not is_running(record.supervisor_pid, record.supervisor_started):
        return None
    return record


def stop_recorded(state_dir: Path, timeout_s: float) -> list[str]:
    """Stop the group recorded in `state_dir`: its supervisor, which stops the rest, then any
    process that outlived it. Returns the names of the processes that were stopped."""
    record = read_record(state_dir)
    if record is None:
        return []
    stopped = []
    if is_running(record.supervisor_pid, record.supervisor_started):
        _signal(record.supervisor_pid, signal.SIGTERM)
        _wait_gone([(record.supervisor_pid, record.supervisor_started)], timeout_s + 5)
        stopped.append(record.role)
    leftovers = [entry for entry in record.processes if is_running(entry.pid, entry.started)]
    _stop_pids([(entry.pid, entry.started) for entry in leftovers], timeout_s)
    stopped += [entry.name for entry in leftovers]
    return stopped


def log_tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(_ANSI.sub("", line) for line in text.splitlines()[-lines:])


class ProcessGroup:
    """Processes started by this command, recorded in `state_dir/processes.json`."""

    def __init__(self, role: str, state_dir: Path, stop_timeout_s: float) -> None:
        self.role = role
        self.state_dir = state_dir
        self.log_dir = state_dir / LOG_DIR
        self.stop_timeout_s = stop_timeout_s
        self._started: list[tuple[ProcessSpec, subprocess.Popen[bytes], Path, int]] = []
        self._stop_requested: int | None = None
        # Process name -> how far its log has been looked through for fatal lines.
        self._scanned: dict[str, int] = {}
        # Process name -> the seconds it was given to come up.
        self._ready_timeouts: dict[str, float] = {}
        own = os.getpid()
        self.record = GroupRecord(role, own, start_time(own) or 0, [])

    def __enter__(self) -> "ProcessGroup":
        running = live_record(self.state_dir)
        if running is not None:
            raise ConfigError("--state", f"a {running.role} already runs from {self.state_dir} (process "
                              f"{running.supervisor_pid}): stop it first (`fedtriage {running.role} stop`)")
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self._write()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)

    def start(self, spec: ProcessSpec, ready_timeout_s: float) -> None:
        """Start `spec` and wait until it is up; a process that ends or logs a fatal line first
        stops the group with its reason and the end of its log."""
        self._ready_timeouts[spec.name] = ready_timeout_s
        process, log, offset = self._launch(spec)
        deadline = time.monotonic() + ready_timeout_s
        while True:
            self._check_interrupted()
            self._check_log(spec, log)
            if process.poll() is not None:
                raise FederationFailed(f"{spec.name} ended (exit code {process.returncode}) while starting; the end "
                                       f"of {log}:\n{log_tail(log)}")
            if self._is_ready(spec, log, offset):
                return
            if time.monotonic() > deadline:
                raise FederationFailed(f"{spec.name} did not come up within {ready_timeout_s:g} s; the end of "
                                       f"{log}:\n{log_tail(log)}")
            time.sleep(0.1)

    def _launch(self, spec: ProcessSpec) -> tuple[subprocess.Popen[bytes], Path, int]:
        """Start `spec`'s process (in place of an earlier one of the same name) and record it;
        returns it, its log and where in the log this start begins."""
        log = self.log_dir / f"{spec.name}.log"
        with log.open("ab") as sink:
            sink.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(spec.command)}\n".encode())
            sink.flush()
            process = subprocess.Popen(
                list(spec.command), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env}, cwd=spec.cwd, start_new_session=True,
            )
        started = start_time(process.pid) or 0
        self._started = [entry for entry in self._started if entry[0].name != spec.name]
        self._started.append((spec, process, log, started))
        self.record.processes = [entry for entry in self.record.processes if entry.name != spec.name]
        self.record.processes.append(RecordedProcess(spec.name, process.pid, started, list(spec.command), str(log)))
        self._write()
        offset = log.stat().st_size
        self._scanned[spec.name] = offset
        return process, log, offset

    def mark_ready(self, details: Mapping[str, str]) -> None:
        self.record.ready = True
        self.record.details = dict(details)
        self._write()

    def watch(self) -> None:
        """Stay in the foreground until a signal asks to stop (returns) or a process ends or logs a
        fatal line (`FederationFailed` naming it); a process with `restart_after_s` is started again."""
        restarts: dict[str, float] = {}
        while True:
            self._check_interrupted(quiet=True)
            if self._stop_requested is not None:
                return
            for spec, process, log, _ in list(self._started):
                if spec.restart_after_s is not None:
                    self._restart_if_ended(spec, process, log, restarts)
                    continue
                self._check_log(spec, log)
                if process.poll() is not None:
                    raise FederationFailed(f"{spec.name} ended (exit code {process.returncode}); the end of "
                                           f"{log}:\n{log_tail(log)}")
            time.sleep(0.5)

    def _restart_if_ended(self, spec: ProcessSpec, process: subprocess.Popen[bytes], log: Path,
                          restarts: dict[str, float]) -> None:
        """Say once that `spec` ended, then start it again once `restart_after_s` has passed."""
        assert spec.restart_after_s is not None
        if process.poll() is None:
            return
        if spec.name not in restarts:
            # What it started may outlive it (uvicorn under `mlflow server`) and hold its port.
            _signal(process.pid, signal.SIGKILL, group=True)
            restarts[spec.name] = time.monotonic() + spec.restart_after_s
            print(f"{spec.name} ended (exit code {process.returncode}; log {log}); starting it again in "
                  f"{spec.restart_after_s:g} s, the rest goes on", flush=True)
        elif time.monotonic() >= restarts[spec.name]:
            del restarts[spec.name]
            if spec.restart_must_come_up:
                self.start(spec, self._ready_timeouts[spec.name])
                print(f"{spec.name} is up again", flush=True)
            else:
                self._launch(spec)

    def stop_all(self) -> None:
        """Stop every started process, the last started first."""
        for _, process, _, started in reversed(self._started):
            if process.poll() is None:
                _stop_pids([(process.pid, started)], self.stop_timeout_s)
            process.wait()
        self._started.clear()
        try:
            (self.state_dir / RECORD_FILE).unlink()
        except FileNotFoundError:
            pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = signum

    def _check_interrupted(self, quiet: bool = False) -> None:
        if self._stop_requested is not None and not quiet:
            raise Interrupted(f"{self.role} start interrupted by {signal.Signals(self._stop_requested).name}; "
                              "everything it started is stopped")

    def _check_log(self, spec: ProcessSpec, log: Path) -> None:
        """Look for a fatal line in what `spec` logged since it started (the log is appended to
        across starts), reading only the complete lines not looked at before; print relayed lines."""
        if not spec.fatal_lines and spec.relay_line is None:
            return
        with log.open("rb") as source:
            source.seek(self._scanned[spec.name])
            fresh = source.read()
        complete = fresh[: fresh.rfind(b"\n") + 1]
        self._scanned[spec.name] += len(complete)
        text = _ANSI.sub("", complete.decode(errors="replace"))
        for pattern, message in spec.fatal_lines:
            if re.search(pattern, text):
                raise FederationFailed(f"{spec.name}: {message}; the end of {log}:\n{log_tail(log)}")
        if spec.relay_line is not None:
            for relayed in re.finditer(spec.relay_line, text):
                print(relayed.group(1), flush=True)

    def _is_ready(self, spec: ProcessSpec, log: Path, offset: int) -> bool:
        if spec.ready_port is not None:
            try:
                with socket.create_connection(spec.ready_port, timeout=0.5):
                    pass
            except OSError:
                return False
        if spec.ready_line is not None:
            with log.open("rb") as source:
                source.seek(offset)
                text = _ANSI.sub("", source.read().decode(errors="replace"))
            return re.search(spec.ready_line, text) is not None
        return True

    def _write(self) -> None:
        path = self.state_dir / RECORD_FILE
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self.record), indent=2), encoding="utf-8")
        os.replace(partial, path)


def _stop_pids(processes: Sequence[tuple[int, int]], timeout_s: float) -> None:
    """Stop processes this module started, each with what it started in turn (its process group:
    a SuperExec's ServerApp, an executor's workers), by their ids: SIGTERM, then SIGKILL for
    whatever is left once the grace period is over or the leader is gone."""
    groups = {pid: _own_group(pid) for pid, _ in processes}
    for pid, _ in processes:
        _signal(pid, signal.SIGTERM, groups[pid])
    _wait_gone(processes, timeout_s)
    for pid, started in processes:
        if groups[pid] or is_running(pid, started):
            _signal(pid, signal.SIGKILL, groups[pid])


def _wait_gone(processes: Sequence[tuple[int, int]], timeout_s: float) -> list[tuple[int, int]]:
    """Wait until none of (pid, start time) `processes` runs; return those still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [(pid, started) for pid, started in processes if is_running(pid, started)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _own_group(pid: int) -> bool:
    """Whether `pid` leads its own process group (every process `ProcessGroup` starts does)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _signal(pid: int, sig: int, group: bool = False) -> None:
    """Signal `pid`, or with `group` every process of the group it leads."""
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def print_status(role: str, ready_word: str, kit: Path, state: Path) -> int:
    """`<role> status`: 0 and each process's state if it runs, 3 (as LSB's status) if not."""
    record = live_record(state)
    if record is None:
        print(f"{role}: not running (state {state})")
        return 3
    print(f"{role}: {ready_word if record.ready else 'starting'} (process {record.supervisor_pid}, kit {kit})")
    for key, value in record.details.items():
        print(f"  {key}: {value}")
    for entry in record.processes:
        print(f"  {entry.name}: {'running' if is_running(entry.pid, entry.started) else 'GONE'} "
              f"(process {entry.pid}, log {entry.log})")
    return 0


def print_stop(role: str, state: Path, timeout_s: float) -> int:
    """`<role> stop`: stop what runs from `state`, saying what was stopped."""
    stopped = stop_recorded(state, timeout_s)
    print(f"stopped: {', '.join(stopped)}" if stopped else f"no {role} runs from {state}")
    return 0
