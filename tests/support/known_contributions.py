"""A ClientApp whose nodes contribute known random vectors through the real SecAgg stages.

Each node needs a kit in its node config (`tests.support.kits.provision_nodes`).

Lets tests check the protocol's arithmetic exactly (expected sum = sum of the used
nodes' vectors) with dropouts and tampering, without training a model.
"""

from collections.abc import Callable

import numpy as np
from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from fl_client.kit import node_kit
from fl_client.protection import secagg as secagg_node
from fl_protocol.protection import messages
from fl_protocol.protection.secagg.contribution import ContributionLayout, Segment
from fl_protocol.settings import SecAggSettings

LENGTH = 257


def layout_for(settings: SecAggSettings, max_contributors: int) -> ContributionLayout:
    return ContributionLayout(
        [Segment("update", LENGTH, settings.clip_range), Segment("count", 1)],
        bits=settings.bits_for(max_contributors),
        max_contributors=max_contributors,
    )


def known_values(node_id: int, clip_range: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(node_id)
    return {"update": rng.uniform(-clip_range, clip_range, LENGTH), "count": np.array([node_id % 1000])}


def known_contributions_app(
    settings: SecAggSettings,
    max_contributors: int,
    alter: Callable[[Message, Context, Message], Message] | None = None,
) -> ClientApp:
    """`alter(request, context, reply)` plays a node that lies: it sees every reply before it leaves."""
    app = ClientApp()
    layout = layout_for(settings, max_contributors)

    def info(context: Context) -> ConfigRecord:
        return ConfigRecord({"label": f"node-{context.node_id}"})

    @app.train()
    def masked(msg: Message, context: Context) -> Message:
        vector = layout.encode(known_values(context.node_id, settings.clip_range)).vector
        return secagg_node.masked(msg, context, node_kit(context.node_config), vector, info(context))

    @app.query(messages.action(messages.SECAGG_SETUP))
    def setup(msg: Message, context: Context) -> Message:
        return secagg_node.setup(msg, context, node_kit(context.node_config), info(context))

    @app.query(messages.action(messages.SECAGG_SHARE_KEYS))
    def share_keys(msg: Message, context: Context) -> Message:
        return secagg_node.share_keys(msg, context, settings, node_kit(context.node_config), info(context))

    @app.query(messages.action(messages.SECAGG_DISPUTE))
    def dispute(msg: Message, context: Context) -> Message:
        return secagg_node.dispute(msg, context, info(context))

    @app.query(messages.action(messages.SECAGG_CONSISTENCY))
    def consistency(msg: Message, context: Context) -> Message:
        return secagg_node.sign_cohort(msg, context, node_kit(context.node_config), info(context))

    @app.query(messages.action(messages.SECAGG_UNMASK))
    def unmask(msg: Message, context: Context) -> Message:
        return secagg_node.unmask(msg, context, settings, node_kit(context.node_config), info(context))

    if alter is None:
        return app
    lying = ClientApp()

    def relay(msg: Message, context: Context) -> Message:
        reply = app(msg, context)
        return alter(msg, context, reply) if reply.has_content() else reply

    lying.train()(relay)
    for message_type in messages.QUERIES:
        lying.query(messages.action(message_type))(relay)
    return lying
