"""The node's executor: takes each ClientApp task from the SuperNode and runs it on a worker
kept up for its app bundle.

    python -P runner.py --runtime-api-address 127.0.0.1:9094 --superexec-auth-secret-file FILE \
        --approvals FILE [--approved-app SHA256 ...] --audit-log FILE --audit-max-bytes N

Takes tasks as Flower's SuperExec does (`AcquireTask`, HMAC-authenticated with the node's
SuperExec secret, ClientApp tasks only), at once after a task and, while idle, when the
SuperNode pokes `--wake-fifo` (or every `--poll-interval` seconds). A task goes to the
worker of its bundle's hash, started on first use (`worker.py`); a worker of an older
bundle is stopped when a new one starts, and a worker that died is replaced. Imports
Flower only (see the package docstring).
"""

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from logging import ERROR, INFO, WARNING
from pathlib import Path
from types import FrameType

from flwr.proto.runtime_pb2 import AcquireTaskRequest
from flwr.supercore import log
from flwr.supercore.auth.superexec_secret import load_superexec_auth_secret
from flwr.supercore.constant import TaskType
from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
from flwr.supercore.interceptors.http.superexec_auth import SuperExecAuthHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient

RUNNER_SCRIPT = Path(__file__)
WORKER_SCRIPT = Path(__file__).with_name("worker.py")
SUPERNODE_SCRIPT = Path(__file__).with_name("supernode.py")
_ACQUIRE_TASK = "/flwr.proto.Runtime/AcquireTask"
# What the runner tells a worker when a run is done on this node (the worker logs the audit head).
RUN_DONE = "run-done"


class _WakePipe:
    """A FIFO the SuperNode pokes when it stored a message: the executor waits on it, not in a sleep."""

    def __init__(self, path: Path) -> None:
        try:
            path.unlink()  # a pipe of an earlier start, or anything else by that name
        except FileNotFoundError:
            pass
        os.mkfifo(path, 0o600)
        self.reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        # Held open for writing too: with no writer left, a pipe reads as at its end, forever ready.
        self.keep_open = os.open(path, os.O_WRONLY | os.O_NONBLOCK)

    def wait(self, longest_s: float) -> None:
        """Until a poke (one already waiting counts) or `longest_s` seconds; then drain the pokes."""
        ready, _, _ = select.select([self.reader], [], [], longest_s)
        if ready:
            try:
                os.read(self.reader, 4096)
            except BlockingIOError:
                pass


class _WorkerProcess:
    """One worker: its process, the pipe it answers on."""

    def __init__(self, runtime_api_address: str, object_retry_s: float, node_arguments: list[str]) -> None:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-P", str(WORKER_SCRIPT), "--runtime-api-address", runtime_api_address,
             "--parent-pid", str(os.getpid()), "--result-fd", str(write_end), "--object-retry-s", str(object_retry_s),
             *node_arguments],
            stdin=subprocess.PIPE, text=True, pass_fds=(write_end,),
        )
        os.close(write_end)
        self.results = os.fdopen(read_end, "r")

    def run(self, token: str) -> str:
        """Hand over one task; its outcome once the worker is done with it ('' if it died)."""
        return self.tell(token)

    def tell(self, line: str) -> str:
        """One line to the worker (a task's token, or `RUN_DONE RUN_ID`); its one-line answer."""
        if self.process.poll() is not None:
            return ""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return ""
        return self.results.readline().strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.results.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--superexec-auth-secret-file", required=True)
    parser.add_argument("--poll-interval", type=float, default=0.05,
                        help="seconds between asks for a task while idle (with --wake-fifo: the longest wait)")
    parser.add_argument("--wake-fifo", type=Path, help="a pipe the SuperNode pokes when it stored a message")
    parser.add_argument("--object-retry-s", type=float, default=0.02)
    parser.add_argument("--run-end-idle-s", type=float, default=30.0,
                        help="seconds without a task after which a run counts as done here")
    # The rest (the node's approved bundles and audit log, `worker.py --help`) goes to each worker as it is.
    args, passed_on = parser.parse_known_args()
    secret = load_superexec_auth_secret(args.superexec_auth_secret_file)
    assert secret is not None
    client = RuntimeHttpClient.from_server_address(
        server_address=args.runtime_api_address, insecure=True, root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec"),
                      SuperExecAuthHttpInterceptor(master_secret=secret, protected_methods={_ACQUIRE_TASK})],
        retry_invoker=make_simple_http_retry_invoker(),
    )
    workers: dict[str, _WorkerProcess] = {}
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    wait_for_work = _WakePipe(args.wake_fifo).wait if args.wake_fifo is not None else time.sleep
    log(INFO, "Starting the ClientApp executor")
    last_run: int | None = None
    last_task_at = 0.0

    def run_done(run_id: int) -> None:
        """Have the worker say the audit log's head once a run is done here (the unit keeps it)."""
        for worker in workers.values():
            worker.tell(f"{RUN_DONE} {run_id}")

    try:
        while not stopping:
            reply = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
            if not (reply.HasField("task") and reply.token):
                if last_run is not None and time.monotonic() - last_task_at > args.run_end_idle_s:
                    run_done(last_run)
                    last_run = None
                wait_for_work(args.poll_interval)
                continue
            if last_run is not None and reply.task.run_id != last_run:
                run_done(last_run)
            last_run = reply.task.run_id
            fab_hash = reply.task.fab_hash
            worker = workers.get(fab_hash)
            if worker is None or worker.process.poll() is not None:
                for old in workers.values():
                    old.stop()
                workers = {fab_hash: _WorkerProcess(args.runtime_api_address, args.object_retry_s, passed_on)}
                worker = workers[fab_hash]
                log(INFO, "ClientApp worker started for app bundle %s", fab_hash[:12])
            outcome = worker.run(reply.token)
            last_task_at = time.monotonic()
            if outcome != "done":
                log(ERROR if not outcome else WARNING, "task %d: %s", reply.task.task_id,
                    outcome or "the worker died; a new one takes the next task")
    finally:
        if last_run is not None:
            run_done(last_run)
        for worker in workers.values():
            worker.stop()
        client.close()


if __name__ == "__main__":
    main()
