"""The public datasets `holdings=torchvision` reads, and the names of their classes.

The class names are facts of each dataset (torchvision's own lists), known before any
file is read: the coordinator builds the model from them, as from listed classes.
"""

import string

TORCHVISION_DATASETS = ("cifar10", "fashion_mnist", "emnist")
EMNIST_SPLITS = ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")

_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FASHION_MNIST = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_ALL_CHARACTERS = sorted(string.digits + string.ascii_letters)
# Letters whose upper and lower case EMNIST's bymerge and balanced splits count as one class.
_MERGED_LOWER_CASE = set("cijklmopsuvwxyz")
_EMNIST = {
    "byclass": tuple(_ALL_CHARACTERS),
    "bymerge": tuple(name for name in _ALL_CHARACTERS if name not in _MERGED_LOWER_CASE),
    "balanced": tuple(name for name in _ALL_CHARACTERS if name not in _MERGED_LOWER_CASE),
    # The files number the letters from 1; torchvision's unused class 0 ("N/A") is left out.
    "letters": tuple(string.ascii_lowercase),
    "digits": tuple(string.digits),
    "mnist": tuple(string.digits),
}


def dataset_classes(dataset: str, emnist_split: str | None) -> tuple[str, ...]:
    """The class names of `dataset` (of its `emnist_split` for EMNIST), in label order."""
    if dataset == "cifar10":
        return _CIFAR10
    if dataset == "fashion_mnist":
        return _FASHION_MNIST
    if dataset == "emnist" and emnist_split in _EMNIST:
        return _EMNIST[emnist_split]
    raise KeyError(f"no such dataset: {dataset} {emnist_split or ''}".strip())
