"""The audit's tests run torch on one thread, as the audit command does (`train.threads`).

Its models and batches are tiny: a second thread only adds synchronisation, and on a busy
2-core machine threads spinning for each other made an attack 20 times slower.
"""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
