"""Triage of seized media with a federated model: `fedtriage classify`.

A separate package because it is neither side of the federation: it runs in a unit's
lab on an examiner's workstation, reads a seized device's files (or a VICS case from
the forensic tool), sets aside what is already known by hash, scores the rest with a
model the federation trained, and writes a ranked list for the investigators' tools.
It reuses the model zoo and the holdings' safe file walking and image decoding.
No output ever contains image content: paths, hashes and scores only.
"""
