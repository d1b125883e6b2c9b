"""What machine a benchmark ran on, so that its figures can be read (and compared) later.

Speed and memory figures mean little without the CPU, the memory, the library versions and
the code they were measured with; this is the one description every report carries. Read
from the operating system and package metadata only: no library is imported to ask it.
"""

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

# The libraries whose versions move the figures.
PACKAGES = ("fedtriage", "flwr", "torch", "ray", "tenseal")
PROJECT_DIR = Path(__file__).resolve().parents[1]


def describe_machine(project_dir: Path = PROJECT_DIR) -> dict[str, object]:
    """CPU, memory, OS, Python, package versions, the checkout's commit and the date, as JSON-ready values."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": memory_gib(),
        "load_average": [round(load, 2) for load in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "os_release": os_release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: package_version(name) for name in PACKAGES},
        "git_commit": git_commit(project_dir),
        "git_dirty": git_dirty(project_dir),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_gib() -> float | None:
    """Physical memory in GiB: MemTotal of /proc/meminfo, else the page count `sysconf` reports."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def os_release() -> str | None:
    """The distribution's own name for itself (e.g. "Ubuntu 24.04.1 LTS"), where it says one."""
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(project_dir: Path) -> str | None:
    """The commit checked out in `project_dir`, or None where it is no git checkout (an installed package)."""
    return _git(project_dir, "rev-parse", "HEAD")


def git_dirty(project_dir: Path) -> bool | None:
    """Whether tracked files differ from that commit: then the commit alone does not name the code measured."""
    status = _git(project_dir, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _git(project_dir: Path, *args: str) -> str | None:
    if not (project_dir / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(project_dir), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
