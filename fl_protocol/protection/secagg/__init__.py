"""Secure aggregation (SecAgg+, Bell et al. 2020) pieces that nodes and server share.

Both sides must agree bit for bit on how vectors are quantized, how masks are
expanded from seeds, how secrets are shared and how keys are derived, so those
definitions live here once. Every primitive comes from `cryptography` (X25519,
HKDF-SHA256, AES-256-GCM, ChaCha20, HMAC-SHA256); randomness comes from the OS
(`secrets`). Shamir sharing over a prime field is the one algorithm written here,
a few lines of textbook arithmetic.
"""
