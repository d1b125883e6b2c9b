"""The privacy audit: the attacks a coordinator can run on what each protection mode gives it.

Threat played throughout: an honest-but-curious server. It runs the protocol as written and
knows what it sent (the global model, the run's settings and seed, hence each node's training
seed), and it attacks exactly what it receives, made here with the nodes' and server's own
code (`server_view`): one node's plaintext update, the unmasked secure sum of a cohort, that
sum under central DP, an update trained under local DP-SGD. Gradient inversion
(`gradient_inversion`) measures what it reconstructs (`image_quality`: PSNR, SSIM); membership
inference (`membership_inference`) measures what the released global model tells anyone about
who trained on what. `report` sets the measurements beside the README's threat model.
Proxy data only: reconstructions are images, and they are shown.
"""
