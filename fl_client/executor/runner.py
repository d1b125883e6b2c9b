"""The node's executor: takes each ClientApp task from the SuperNode and runs it on a worker
kept up for its app bundle.

    python -P runner.py --runtime-api-address 127.0.0.1:9094 --superexec-auth-secret-file FILE

Takes tasks as Flower's SuperExec does (`AcquireTask`, HMAC-authenticated with the node's
SuperExec secret, ClientApp tasks only), polling every `--poll-interval` seconds while
idle and at once after a task. A task goes to the worker of its bundle's hash, started on
first use (`worker.py`); a worker of an older bundle is stopped when a new one starts,
and a worker that died is replaced. Imports Flower only (see the package docstring).
"""

import argparse
import os
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


class _WorkerProcess:
    """One worker: its process, the pipe it answers on."""

    def __init__(self, runtime_api_address: str, object_retry_s: float) -> None:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-P", str(WORKER_SCRIPT), "--runtime-api-address", runtime_api_address,
             "--parent-pid", str(os.getpid()), "--result-fd", str(write_end), "--object-retry-s", str(object_retry_s)],
            stdin=subprocess.PIPE, text=True, pass_fds=(write_end,),
        )
        os.close(write_end)
        self.results = os.fdopen(read_end, "r")

    def run(self, token: str) -> str:
        """Hand over one task; its outcome once the worker is done with it ('' if it died)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(token + "\n")
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
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--object-retry-s", type=float, default=0.02)
    args = parser.parse_args()
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
    log(INFO, "Starting the ClientApp executor")
    try:
        while not stopping:
            reply = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
            if not (reply.HasField("task") and reply.token):
                time.sleep(args.poll_interval)
                continue
            fab_hash = reply.task.fab_hash
            worker = workers.get(fab_hash)
            if worker is None or worker.process.poll() is not None:
                for old in workers.values():
                    old.stop()
                workers = {fab_hash: _WorkerProcess(args.runtime_api_address, args.object_retry_s)}
                worker = workers[fab_hash]
                log(INFO, "ClientApp worker started for app bundle %s", fab_hash[:12])
            outcome = worker.run(reply.token)
            if outcome != "done":
                log(ERROR if not outcome else WARNING, "task %d: %s", reply.task.task_id,
                    outcome or "the worker died; a new one takes the next task")
    finally:
        for worker in workers.values():
            worker.stop()
        client.close()


if __name__ == "__main__":
    main()
