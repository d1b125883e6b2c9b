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

Before anything of a bundle is installed or imported, the worker hashes it and runs it only if
the unit approved that hash (`approved_apps.py`); any other bundle gets the reply "refused:
app-not-approved" and none of its code runs. Every instruction and every reply is entered in
the node's audit log (`audit_log.py`), fsynced before the reply is handed to the SuperNode.
"""

import argparse
import hashlib
import importlib.util
import os
import sys
from logging import DEBUG, ERROR, INFO, WARNING
from pathlib import Path
from types import ModuleType
from typing import Any

from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.cli.install import install_from_fab
from flwr.clientapp.client_app import ClientApp, LoadClientAppError
from flwr.clientapp.utils import get_load_client_app_fn
from flwr.common.constant import ErrorCode, SubStatus
from flwr.common.serde import context_from_proto, fab_from_proto, recorddict_to_proto, run_from_proto
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
# What a refusal's reason starts with (the rest names the rule).
_REFUSED = "refused: "
# What the runner says when a run is done on this node (runner.py).
RUN_DONE = "run-done"


def _sibling(name: str) -> ModuleType:
    """A module of this folder (standard library only), loaded by path under a name no bundle uses."""
    spec = importlib.util.spec_from_file_location(f"_fedtriage_executor_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


audit_log = _sibling("audit_log")
approved_apps = _sibling("approved_apps")


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


def payload(message: Message) -> dict[str, Any]:
    """Size and SHA-256 of a message's content as Flower serializes it (no content itself)."""
    if not message.has_content():
        return {"bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}
    data = recorddict_to_proto(message.content).SerializeToString()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def decision(reply: Message | None) -> dict[str, Any]:
    """The node's decision on an instruction, as its reply shows it."""
    if reply is None or not reply.has_error():
        return {"decision": "accepted" if reply is not None else "failed", "rule": None}
    reason = reply.error.reason
    if reason.startswith(_REFUSED):
        return {"decision": "refused", "rule": reason.removeprefix(_REFUSED)}
    return {"decision": "failed", "rule": None}


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """What the node decides for its workers: approved bundles, its audit log (the runner passes them on)."""
    parser.add_argument("--approvals", type=Path, required=True, help="the unit's approved-apps.json")
    parser.add_argument("--approved-app", action="append", default=[], help="one more approved bundle SHA-256")
    parser.add_argument("--audit-log", type=Path, required=True)
    parser.add_argument("--audit-max-bytes", type=int, required=True)


class _Worker:
    def __init__(self, runtime_api_address: str, object_retry_s: float, approvals: Path,
                 also_approved: tuple[str, ...], audit: Any) -> None:
        self.runtime_api_address = runtime_api_address
        self.object_retry_s = object_retry_s
        self.approvals = approvals
        self.also_approved = also_approved
        self.audit = audit
        self.apps: dict[str, ClientApp] = {}
        self.load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)

    def approved(self, bundle: bytes) -> bool:
        """Whether the unit approved this bundle: its hash, computed here, on the node's list."""
        try:
            approved = approved_apps.approved_hashes(self.approvals, self.also_approved)
        except ValueError as err:
            log(ERROR, "No app is approved until this is fixed: %s", err)
            return False
        return approved_apps.bundle_hash(bundle) in approved

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
        bundle = ""
        sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
        try:
            heartbeat.start()
            message, context, run, fab = pull_task_input(client, self.object_retry_s)
            bundle = approved_apps.bundle_hash(fab.content)
            # Flower finds the installed bundle by the hash it was sent with: it must be the content's.
            if fab.hash_str == bundle and self.approved(fab.content):
                app = self.apps.get(bundle)
                if app is None:
                    install_from_fab(fab.content, skip_prompt=True)
                    app = self.apps[bundle] = self.load(run.fab_id, run.fab_version, fab.hash_str)
                reply = app(message=message, context=context)
                sub_status, details = SubStatus.COMPLETED, ""
            else:
                log(WARNING, "Refused app bundle %s (%s %s): not approved on this node (fedtriage node approve)",
                    bundle, run.fab_id, run.fab_version)
                reply = Message(Error(code=ErrorCode.LOAD_CLIENT_APP_EXCEPTION, reason=approved_apps.REFUSAL),
                                reply_to=message)
                details = approved_apps.REFUSAL
        except Exception as ex:  # noqa: BLE001 - reported to the coordinator, as flwr-clientapp does
            code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION if isinstance(ex, LoadClientAppError) else (
                ErrorCode.CLIENT_APP_RAISED_EXCEPTION)
            details = f"{type(ex)}:<'{ex}'>"
            log(ERROR, "ClientApp raised an exception", exc_info=ex)
            if message is not None:
                reply = Message(Error(code=code, reason=details), reply_to=message)
        finally:
            pushed = False
            if message is not None:
                self.enter(message, bundle, reply)  # before the reply leaves: a failure here sends nothing
            if reply is not None and context is not None:
                try:
                    push_message(client, reply, context)
                    pushed = True
                except Exception as ex:  # noqa: BLE001
                    log(ERROR, "Failed to push the reply", exc_info=ex)
                    sub_status = SubStatus.FAILED
            push_task_output(client=client, context=context, sub_status=sub_status, details=details)
            if heartbeat.is_running:
                heartbeat.stop()
            client.close()
        return sub_status == SubStatus.COMPLETED and pushed

    def run_done(self, run_id: int) -> None:
        """Log the audit log's head, for the unit to keep elsewhere (`fedtriage audit verify --anchor`)."""
        seq, head = self.audit.head()
        log(INFO, "run %d done here: audit log head %s (entry %d)", run_id, head, seq)

    def enter(self, message: Message, bundle: str, reply: Message | None) -> None:
        """The instruction and the node's reply in the audit log, fsynced."""
        about = {"run": message.metadata.run_id, "round": message.metadata.group_id,
                 "type": message.metadata.message_type}
        entries = [{"event": "instruction", **about, "message": message.metadata.message_id, "app": bundle,
                    **payload(message), **decision(reply)}]
        if reply is not None:
            error = f"{reply.error.code}: {reply.error.reason}" if reply.has_error() else None
            entries.append({"event": "reply", **about, **payload(reply), "error": error})
        self.audit.append(*entries)  # one fsync for both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    parser.add_argument("--object-retry-s", type=float, default=0.02)
    add_node_arguments(parser)
    args = parser.parse_args()
    start_parent_process_monitor(args.parent_pid)
    worker = _Worker(args.runtime_api_address, args.object_retry_s, args.approvals, tuple(args.approved_app),
                     audit_log.AuditLog(args.audit_log, args.audit_max_bytes))
    log(INFO, "ClientApp worker ready")
    with os.fdopen(args.result_fd, "w") as results:
        for line in sys.stdin:
            token = line.strip()
            if token.startswith(RUN_DONE + " "):
                worker.run_done(int(token.split()[1]))
                print("ok", file=results, flush=True)
            elif token:
                log(DEBUG, "ClientApp worker: task")
                print("done" if worker.run_task(token) else "failed", file=results, flush=True)


if __name__ == "__main__":
    main()
