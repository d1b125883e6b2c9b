"""A national unit's node: the ClientApp, holdings, local training, and update
protection's node side (`protection`)."""
