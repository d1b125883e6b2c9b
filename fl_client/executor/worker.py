"""A ClientApp worker for one app bundle: runs the tasks its runner hands it, one at a time.

Started by `runner.py` as `python -P worker.py --runtime-api-address ADDRESS --parent-pid PID
--result-fd FD`; reads one task token per line on stdin and answers one line (`done` or
`failed`) per task on the pipe FD (stdout and stderr are the app's and Flower's log). Each
task is what Flower's `flwr-clientapp` does for one token (pull the message, context, run
and bundle; install the bundle; run the ClientApp; push the reply and the context),
without exiting afterwards: the app, once imported, serves the next message.
Imports Flower only (see the package docstring).

The SuperNode hands out a task as soon as it has the message, while it is still fetching
the message's objects from the SuperLink; Flower's pull then waits a whole second before
asking again for an object not there yet, at every message. The worker asks again after
`--object-retry-s` instead.
"""

import argparse
import os
import sys
from logging import DEBUG, ERROR, INFO

from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.cli.install import install_from_fab
from flwr.clientapp.client_app import ClientApp, LoadClientAppError
from flwr.clientapp.utils import get_load_client_app_fn
from flwr.common.constant import ErrorCode, SubStatus
from flwr.common.serde import context_from_proto, fab_from_proto, run_from_proto
from flwr.proto.node_pb2 import Node
from flwr.proto.runtime_pb2 import PullAppMessagesRequest, PullTaskInputRequest
from flwr.supercore import log
from flwr.supercore.app_utils import start_parent_process_monitor
from flwr.supercore.fab import Fab
from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
from flwr.supercore.inflatable.inflatable_protobuf_utils import (
    make_confirm_message_received_fn_protobuf,
    make_pull_object_fn_protobuf,
)
from flwr.supercore.inflatable.inflatable_utils import pull_and_inflate_object_from_tree
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.run import Run
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.task_identity import TaskIdentity
from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

# Ceiling of the growing pause between asks for an object the SuperNode does not have yet.
_OBJECT_RETRY_CAP_S = 1.0


def pull_task_input(client: RuntimeHttpClient, object_retry_s: float) -> tuple[Message, Context, Run, Fab]:
    """Flower's `run_clientapp.pull_task_input`, asking again for a missing object after `object_retry_s`."""
    task = client.PullTaskInput(PullTaskInputRequest())
    TaskIdentity.task_id = task.task_id
    TaskIdentity.run_id = task.run.run_id
    TaskIdentity.node_id = task.context.node_id
    context, run, fab = context_from_proto(task.context), run_from_proto(task.run), fab_from_proto(task.fab)
    pulled = client.PullMessages(PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("No messages received from Runtime API")
    node = Node(node_id=context.node_id)
    object_tree = pulled.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        object_tree,
        make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(client.ConfirmMessageReceived, node, context.run_id),
        return_type=Message,
        initial_backoff=object_retry_s,
        backoff_cap=_OBJECT_RETRY_CAP_S,
    )
    message.metadata.__dict__["_message_id"] = object_tree.object_id  # as Flower does: not part of the content
    return message, context, run, fab


class _Worker:
    def __init__(self, runtime_api_address: str, object_retry_s: float) -> None:
        self.runtime_api_address = runtime_api_address
        self.object_retry_s = object_retry_s
        self.apps: dict[str, ClientApp] = {}
        self.load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)

    def run_task(self, token: str) -> bool:
        """One message, as `flwr-clientapp` runs it; True if the ClientApp completed."""
        client = RuntimeHttpClient.from_server_address(
            server_address=self.runtime_api_address, insecure=True, root_certificates=None,
            interceptors=[RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
                          RuntimeTokenHttpInterceptor(token)],
            retry_invoker=make_simple_http_retry_invoker(),
        )
        heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
        message: Message | None = None
        context: Context | None = None
        reply: Message | None = None
        sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
        try:
            heartbeat.start()
            message, context, run, fab = pull_task_input(client, self.object_retry_s)
            app = self.apps.get(fab.hash_str)
            if app is None:
                install_from_fab(fab.content, skip_prompt=True)
                app = self.apps[fab.hash_str] = self.load(run.fab_id, run.fab_version, fab.hash_str)
            reply = app(message=message, context=context)
            sub_status, details = SubStatus.COMPLETED, ""
        except Exception as ex:  # noqa: BLE001 - reported to the coordinator, as flwr-clientapp does
            code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION if isinstance(ex, LoadClientAppError) else (
                ErrorCode.CLIENT_APP_RAISED_EXCEPTION)
            details = f"{type(ex)}:<'{ex}'>"
            log(ERROR, "ClientApp raised an exception", exc_info=ex)
            if message is not None:
                reply = Message(Error(code=code, reason=details), reply_to=message)
        finally:
            if reply is not None and context is not None:
                try:
                    push_message(client, reply, context)
                except Exception as ex:  # noqa: BLE001
                    log(ERROR, "Failed to push the reply", exc_info=ex)
                    sub_status = SubStatus.FAILED
            push_task_output(client=client, context=context, sub_status=sub_status, details=details)
            if heartbeat.is_running:
                heartbeat.stop()
            client.close()
        return sub_status == SubStatus.COMPLETED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--object-retry-s", type=float, default=0.02)
    args = parser.parse_args()
    start_parent_process_monitor(args.parent_pid)
    worker = _Worker(args.runtime_api_address, args.object_retry_s)
    log(INFO, "ClientApp worker ready")
    with os.fdopen(args.result_fd, "w") as results:
        for line in sys.stdin:
            token = line.strip()
            if token:
                log(DEBUG, "ClientApp worker: task")
                print("done" if worker.run_task(token) else "failed", file=results, flush=True)


if __name__ == "__main__":
    main()
