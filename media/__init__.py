"""Untrusted media files: walking a tree, telling kinds apart, decoding, hashing, videos, VICS.

A unit's holdings and a seized device hold the same kinds of hostile files (broken
downloads, documents named like images, decompression bombs, links out of the tree),
so both build on these pieces: `fl_client.holdings` labels what it reads for
training, `triage` scores it. The package stays free of torch and Flower (numpy, Pillow,
PyAV and the PDQ bindings only), like torchvision's `io` beside its `datasets`.
"""
