"""Provisioning a real federation: the kits a coordinator and its units are shipped.

From one federation file (`federation_file`) the provisioning authority makes, with
`cryptography` only: a CA and the coordinator's TLS server certificate (`tls`), a
SuperNode authentication key per unit as Flower 1.42 loads it (`supernode_keys`), every
party's identity key and the roster they pin (`fl_protocol.identity.kits`, shared with
simulations), and the coordinator's SuperExec secret. `kits` lays the kits out, keeps
what exists, adds and rotates units, and tells what it did (`report`); `staging` writes
all of it so that a failure never leaves half a kit; `layout` names every file; `readme`
and `kit_file` (kit.yaml) say what each kit and file is for. Defaults: `defaults`.
"""
