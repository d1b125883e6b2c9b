"""What the server and the nodes of a fedtriage federation agree on.

This small package exists because both sides need the same definitions and neither
side may import the other: the typed run settings (`settings`) and how they cross into
Flower's run config (`run_config`), the keys of the records inside Flower messages
(`records`), and update protection's shared part (`protection`: the modes, the message
types of every stage, the SecAgg+ building blocks and the CKKS contexts). It holds no
training, aggregation or tracking logic.
"""
