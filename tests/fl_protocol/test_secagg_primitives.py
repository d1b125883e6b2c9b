"""The shared SecAgg building blocks: sharing, masks, keys, sealed boxes, the graph, quantization."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_protocol.protection import array_vector
from fl_protocol.protection.secagg import keys, shamir
from fl_protocol.protection.secagg.contribution import ContributionLayout, Segment
from fl_protocol.protection.secagg.masks import mask_vector
from fl_protocol.protection.secagg.neighbourhood import neighbours
from fl_protocol.protection.secagg.sealed_shares import TamperedBox, open_box, open_revealed, seal


@given(
    secret=st.binary(min_size=32, max_size=32),
    threshold=st.integers(1, 6),
    extra=st.integers(0, 5),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_any_threshold_shares_give_the_secret_back(secret: bytes, threshold: int, extra: int, data) -> None:
    xs = list(range(1, threshold + extra + 1))
    shares = shamir.split(secret, threshold, xs)
    chosen = data.draw(st.permutations(shares))[:threshold]
    assert shamir.reconstruct(chosen, threshold) == secret


def test_fewer_shares_than_the_threshold_are_refused() -> None:
    shares = shamir.split(bytes(range(32)), 3, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="need 3 shares"):
        shamir.reconstruct(shares[:2], 3)


def test_shares_of_the_same_secret_differ_between_splits() -> None:
    a = shamir.split(bytes(32), 2, [1, 2])
    b = shamir.split(bytes(32), 2, [1, 2])
    assert a != b  # fresh random polynomial each time


def test_masks_are_deterministic_per_seed_and_uniform_looking() -> None:
    seed = bytes(range(32))
    first, again = mask_vector(seed, 100_000), mask_vector(seed, 100_000)
    other = mask_vector(bytes(32), 100_000)
    assert first.dtype == np.uint32 and np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert abs(first.astype(np.float64).mean() / 2**32 - 0.5) < 0.01


def test_both_ends_of_an_exchange_derive_the_same_key_per_purpose_and_round() -> None:
    alice, bob = keys.new_private_key(), keys.new_private_key()
    k_ab = keys.derive_key(alice, keys.public_bytes(bob), "mask", b"round-1")
    k_ba = keys.derive_key(bob, keys.public_bytes(alice), "mask", b"round-1")
    assert k_ab == k_ba and len(k_ab) == 32
    assert keys.derive_key(alice, keys.public_bytes(bob), "share-box", b"round-1") != k_ab
    assert keys.derive_key(alice, keys.public_bytes(bob), "mask", b"round-2") != k_ab


def test_tags_detect_any_change_of_any_part() -> None:
    key = bytes(32)
    tag = keys.tag(key, b"stage", b"payload")
    assert keys.verify_tag(key, tag, b"stage", b"payload")
    assert not keys.verify_tag(key, tag, b"stage", b"payloaD")
    assert not keys.verify_tag(key, tag, b"stagep", b"ayload")  # parts are length-prefixed
    assert not keys.verify_tag(bytes([1]) * 32, tag, b"stage", b"payload")
    assert not keys.verify_tag(key, tag.hex(), b"stage", b"payload")  # type: ignore[arg-type]


def test_sealed_boxes_open_only_unchanged_for_their_round_and_receiver() -> None:
    receiver = keys.new_private_key()
    c_sk, c_pk = keys.private_bytes(receiver), keys.public_bytes(receiver)
    box, secret = seal(c_pk, b"share", b"round", sender=1, receiver=2)
    assert open_box(c_sk, box, b"round", 1, 2) == b"share"
    flipped = box[:-1] + bytes([box[-1] ^ 1])
    for args in [(flipped, b"round", 1, 2), (box, b"other", 1, 2), (box, b"round", 1, 3), (box, b"round", 2, 1)]:
        with pytest.raises(TamperedBox):
            open_box(c_sk, *args)
    with pytest.raises(TamperedBox):
        open_box(keys.private_bytes(keys.new_private_key()), box, b"round", 1, 2)


def test_a_revealed_box_secret_opens_that_box_only() -> None:
    receiver = keys.new_private_key()
    c_pk = keys.public_bytes(receiver)
    box, secret = seal(c_pk, b"share", b"round", sender=1, receiver=2)
    other, other_secret = seal(c_pk, b"other share", b"round", sender=1, receiver=2)
    assert open_revealed(secret, c_pk, box, b"round", 1, 2) == b"share"
    with pytest.raises(TamperedBox, match="another box"):
        open_revealed(other_secret, c_pk, box, b"round", 1, 2)
    with pytest.raises(TamperedBox):
        open_revealed(secret, c_pk, box, b"round", 1, 3)


@pytest.mark.parametrize(("n", "degree"), [(10, 4), (11, 6), (30, 8), (5, None), (5, 8)])
def test_neighbourhood_graph_is_symmetric_and_regular(n: int, degree: int | None) -> None:
    graph = neighbours(list(range(100, 100 + n)), degree, seed=b"seed")
    expected = n - 1 if degree is None or degree >= n - 1 else degree
    for node, peers in graph.items():
        assert node not in peers and len(peers) == expected
        assert all(node in graph[peer] for peer in peers)
    assert graph == neighbours(list(reversed(range(100, 100 + n))), degree, seed=b"seed")


@given(
    length=st.integers(1, 300),
    nodes=st.integers(1, 12),
    bits=st.integers(8, 24),
    bound=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=80, deadline=None)
def test_decoded_sums_are_within_the_promised_quantization_bound(length, nodes, bits, bound, seed) -> None:
    layout = ContributionLayout([Segment("x", length, bound), Segment("n", 1)], bits=bits, max_contributors=16)
    rng = np.random.default_rng(seed)
    values = rng.uniform(-bound, bound, size=(nodes, length))
    counts = rng.integers(0, 1000, size=nodes)
    total = np.zeros(layout.length, dtype=np.uint32)
    for row, count in zip(values, counts):
        total += layout.encode({"x": row, "n": count}).vector
    decoded = layout.decode_sum(total, nodes)
    assert np.max(np.abs(decoded["x"] - values.sum(axis=0))) <= layout.sum_error_bound("x", nodes) * (1 + 1e-9)
    assert decoded["n"][0] == counts.sum()


def test_values_outside_the_range_are_counted_not_silently_clipped() -> None:
    layout = ContributionLayout([Segment("x", 4, 1.0)], bits=16, max_contributors=4)
    encoded = layout.encode({"x": np.array([0.5, 1.5, -3.0, 1.0])})
    assert encoded.out_of_range == 2


def test_the_clipped_count_fills_its_own_segment_in_the_same_pass() -> None:
    layout = ContributionLayout([Segment("x", 4, 1.0), Segment("clipped", 1)], bits=16, max_contributors=4)
    encoded = layout.encode({"x": np.array([0.5, 1.5, -3.0, 1.0])}, clipped_into="clipped")
    assert encoded.out_of_range == 2
    assert layout.decode_sum(encoded.vector, 1)["clipped"][0] == 2


def test_counts_up_to_the_count_limit_are_accepted_and_beyond_refused() -> None:
    layout = ContributionLayout([Segment("n", 1)], bits=16, max_contributors=4)
    assert layout.encode({"n": layout.count_limit}).vector[0] == layout.count_limit
    assert layout.count_limit * 5 < 2**32
    with pytest.raises(ValueError, match="counts"):
        layout.encode({"n": layout.count_limit + 1})


def test_layouts_that_could_overflow_are_refused() -> None:
    with pytest.raises(ValueError, match="overflow"):
        ContributionLayout([Segment("x", 1, 1.0)], bits=28, max_contributors=100)


def test_a_models_zero_dimensional_buffers_come_back_as_arrays_flower_accepts() -> None:
    # Batch norm's `num_batches_tracked` is a 0-d int64 buffer; NumPy turns 0-d results into scalars.
    template = {"weight": np.zeros((2, 2), dtype=np.float32), "num_batches_tracked": np.array(7, dtype=np.int64)}
    arrays = array_vector.unflatten(np.array([0.5, 1.0, 1.5, 2.0, 3.4]), template)
    assert arrays["num_batches_tracked"].shape == () and arrays["num_batches_tracked"].dtype == np.int64
    record = ArrayRecord({name: Array(array) for name, array in arrays.items()})
    assert int(record["num_batches_tracked"].numpy()) == 3
