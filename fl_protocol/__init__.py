"""What the server and the nodes of a fedtriage federation agree on.

This small package exists because both sides need the same definitions and neither
side may import the other: the typed run settings and how they cross into Flower's run
config, the keys of the records inside Flower messages, and the switch that keeps
Flower, Ray and MLflow from phoning home. It holds no training, aggregation or
tracking logic.
"""
