"""A national unit's node: the ClientApp, holdings loaders, local training."""
