"""Who is who in a federation: long-term identity keys and the roster a party pins.

Everything a node relies on for its safety is checked against keys it holds itself:
its own identity key and the roster it was given and inspected (`roster.Roster`), never
against a key that arrives in a message.
"""
