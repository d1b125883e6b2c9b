"""Registers the protocol stages of secure aggregation and CKKS on a ClientApp.

Every ClientApp that takes part in protected rounds (the product's, and benchmark
apps that skip training) answers these stages the same way; only the stage that
carries the contribution (training or evaluation) differs and is registered by the app.
"""

from collections.abc import Callable

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from fl_client import ckks_node, secagg_node
from fl_protocol.settings import RunSettings


def register_secure_stages(
    app: ClientApp,
    settings_for: Callable[[Context], RunSettings],
    node_info: Callable[[Context], ConfigRecord],
) -> None:
    """Add the setup, share-keys, unmask and CKKS-decrypt handlers to `app`."""

    @app.query("secagg_setup")
    def setup(msg: Message, context: Context) -> Message:
        """Stage 0: this run's encryption key, confirmed to the server."""
        return secagg_node.setup(msg, context, node_info(context))

    @app.query("secagg_share_keys")
    def share_keys(msg: Message, context: Context) -> Message:
        """Stage 1: this round's mask keys, shared among the neighbours."""
        return secagg_node.share_keys(msg, context, settings_for(context).secure.secagg, node_info(context))

    @app.query("secagg_unmask")
    def unmask(msg: Message, context: Context) -> Message:
        """Stage 3: the shares the server may have."""
        return secagg_node.unmask(msg, context, node_info(context))

    @app.query("ckks_decrypt")
    def decrypt(msg: Message, context: Context) -> Message:
        """CKKS mode: decrypt the federation's summed ciphertexts."""
        return ckks_node.decrypt_sum(msg, context, settings_for(context).secure.ckks, node_info(context))
