import os

import pytest
import torch
from fakedata import write_cifar100, write_image_folder, write_mnist

from vitcli.data import Batches, load_splits
from vitcli.data.batches import Augmentation, random_flip, random_translate
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import DataError
from vitcli.settings.config import DataConfig


def test_mnist_idx_files_load_through_torchvision(mnist_dir):
    splits = load_splits(DataConfig(dataset="mnist", data_dir=str(mnist_dir)), download=False)
    assert splits.info.channels == 1 and (splits.info.height, splits.info.width) == (28, 28)
    assert splits.train.images.dtype == torch.uint8 and splits.train.images.shape[1:] == (1, 28, 28)
    # 600 training images, a tenth held out for validation (sets under 50k), 200 test images.
    assert (len(splits.train), len(splits.val), len(splits.test)) == (540, 60, 200)
    assert splits.info.classes[0] == "0 - zero" and splits.info.family == "digits"


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST")
    splits = load_splits(DataConfig(dataset="fashion-mnist", data_dir=str(tmp_path)), download=False)
    assert splits.info.classes[0] == "T-shirt/top" and splits.stats.mean == (0.2860,)


def test_cifar10_pickle_batches_load(cifar10_dir):
    splits = load_splits(
        DataConfig(dataset="cifar10", data_dir=str(cifar10_dir), val_size=50), download=False
    )
    assert splits.train.images.shape == (450, 3, 32, 32)
    assert splits.info.classes[-1] == "truck" and splits.info.family == "natural"


def test_cifar10_channels_are_in_order(cifar10_dir):
    import pickle

    with open(cifar10_dir / "cifar-10-batches-py" / "test_batch", "rb") as f:
        raw = pickle.load(f)["data"][0]
    splits = load_splits(DataConfig(dataset="cifar10", data_dir=str(cifar10_dir)), download=False)
    torch.testing.assert_close(splits.test.images[0].flatten(), torch.as_tensor(raw))


def test_cifar100_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    splits = load_splits(DataConfig(dataset="cifar100", data_dir=str(tmp_path)), download=False)
    assert len(splits.info.classes) == 100 and int(splits.train.labels.max()) < 100


def test_image_folder_rgb_rectangular_with_val(tmp_path):
    write_image_folder(tmp_path / "pets", val=True)
    splits = load_splits(DataConfig(dataset=f"folder:{tmp_path / 'pets'}"))
    assert splits.info.classes == ["cat", "dog", "fish"]
    assert splits.train.images.shape == (60, 3, 16, 24)
    assert len(splits.val) == 18 and len(splits.test) == 18  # val/ is used as it is, not held out
    assert len(splits.stats.mean) == 3 and all(s > 0 for s in splits.stats.std)


def test_image_folder_grayscale(tmp_path):
    write_image_folder(tmp_path / "g", mode="L", size=(20, 20))
    splits = load_splits(DataConfig(dataset=f"folder:{tmp_path / 'g'}", val_size=0))
    assert splits.info.channels == 1 and splits.info.family == "digits" and splits.val is None


def test_image_folder_without_test_split(tmp_path):
    (tmp_path / "f" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="has no test/ folder"):
        load_splits(DataConfig(dataset=f"folder:{tmp_path / 'f'}"))


def test_missing_data_offline_names_the_expected_files(tmp_path):
    with pytest.raises(
        DataError, match=r"mnist is not in .*MNIST \(expected raw/train-images-idx3-ubyte, raw/train-labels"
    ):
        load_splits(DataConfig(dataset="mnist", data_dir=str(tmp_path)), download=False)


def test_validation_split_is_seeded_and_disjoint(mnist_dir):
    cfg = DataConfig(dataset="mnist", data_dir=str(mnist_dir), val_size=100)
    a, b = load_splits(cfg, download=False), load_splits(cfg, download=False)
    torch.testing.assert_close(a.val.images, b.val.images)
    train_rows = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in a.val.images)
    assert len(a.train) + len(a.val) == 600


def test_val_size_zero_and_too_big(mnist_dir):
    assert load_splits(DataConfig(data_dir=str(mnist_dir), val_size=0), download=False).val is None
    with pytest.raises(DataError, match="leaves no training images"):
        load_splits(DataConfig(data_dir=str(mnist_dir), val_size=600), download=False)


def test_subset_covers_classes(mnist_dir):
    splits = load_splits(DataConfig(data_dir=str(mnist_dir), subset=100), download=False)
    assert len(splits.train) == 100 and len(splits.train.labels.unique()) == 10
    with pytest.raises(DataError, match="more than the"):
        load_splits(DataConfig(data_dir=str(mnist_dir), subset=10_000), download=False)


def test_decoded_tensors_are_cached_until_the_files_change(mnist_dir, monkeypatch):
    from vitcli.data import datasets
    from vitcli.data.cache import cache_root

    first = load_splits(DataConfig(data_dir=str(mnist_dir)), download=False)
    assert len(list((cache_root() / "tensors").glob("mnist-*.safetensors"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(datasets, "_open_torchvision", no_decoding)
    again = load_splits(DataConfig(data_dir=str(mnist_dir)), download=False)  # from the cache
    torch.testing.assert_close(again.test.images, first.test.images)
    raw = mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    os.utime(raw, ns=(raw.stat().st_atime_ns, raw.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        load_splits(DataConfig(data_dir=str(mnist_dir)), download=False)


def test_translation_moves_content_and_fills_with_zeros():
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(64, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 3, 3] = 255
    shifted = random_translate(images, 2, g)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    positions = {tuple((s[0] == 255).nonzero()[0].tolist()) for s in shifted}
    assert all(1 <= r <= 5 and 1 <= c <= 5 for r, c in positions) and len(positions) > 5
    assert (shifted == 255).sum() == 64  # one lit pixel each: moved, never duplicated


def test_flip_mirrors_about_half():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).repeat(200, 3, 2, 1)
    flipped = random_flip(images, g)
    mirrored = (flipped[:, 0, 0, 0] == 3).sum().item()
    assert 60 < mirrored < 140 and ((flipped[:, 0, 0, 0] == 0) | (flipped[:, 0, 0, 0] == 3)).all()


def _preprocess(splits):
    return Preprocessing(splits.stats.mean, splits.stats.std).on("cpu")


def test_batches_are_normalised_and_repeatable(mnist_dir):
    splits = load_splits(DataConfig(data_dir=str(mnist_dir)), download=False)
    cpu = torch.device("cpu")

    def first(seed):
        return next(
            iter(
                Batches(
                    splits.train,
                    32,
                    cpu,
                    _preprocess(splits),
                    shuffle=True,
                    augment=Augmentation("digits"),
                    seed=seed,
                )
            )
        )

    (x1, y1), (x2, y2), (x3, _) = first(0), first(0), first(1)
    torch.testing.assert_close(x1, x2)
    torch.testing.assert_close(y1, y2)
    assert not torch.equal(x1, x3)
    plain = Batches(splits.train, 1000, cpu, _preprocess(splits))
    x, _ = next(iter(plain))
    expected = (splits.train.images.float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(x, expected)


def test_drop_last_keeps_shapes_equal_but_never_drops_everything(mnist_dir):
    splits = load_splits(DataConfig(data_dir=str(mnist_dir), subset=70), download=False)
    cpu = torch.device("cpu")
    assert [len(y) for _, y in Batches(splits.train, 32, cpu, _preprocess(splits), drop_last=True)] == [
        32,
        32,
    ]
    assert [len(y) for _, y in Batches(splits.train, 100, cpu, _preprocess(splits), drop_last=True)] == [70]


def test_damaged_files_are_not_reported_as_missing(mnist_dir):
    (mnist_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(DataError, match="files in .*MNIST cannot be read"):
        load_splits(DataConfig(data_dir=str(mnist_dir)), download=False)


def test_config_knows_the_same_data_sets_as_the_registry():
    from vitcli.data.datasets import TORCHVISION_SOURCES
    from vitcli.settings.config import DATASETS

    assert set(DATASETS) == set(TORCHVISION_SOURCES)


def test_channel_stats_match_the_direct_computation():
    from vitcli.data.folders import channel_stats

    images = torch.randint(
        0, 256, (50, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    mean, std = channel_stats(images, chunk=8)
    pixels = images.double() / 255
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), pixels.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(
        torch.tensor(std, dtype=torch.float64), pixels.std(dim=(0, 2, 3), unbiased=False)
    )


def test_a_failed_download_names_its_cause(tmp_path, monkeypatch):
    """A real download from a mirror where nothing listens (no internet needed): the line ends in the
    refused connection, not in torchvision's bare "Error downloading train-images-idx3-ubyte.gz:"."""
    import torchvision

    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(DataError) as raised:
        load_splits(DataConfig(dataset="mnist", data_dir=str(tmp_path)), download=True)
    message = str(raised.value)
    assert (
        "download failed (Error downloading train-images-idx3-ubyte.gz: Tried http://127.0.0.1:9/" in message
    )
    assert "refused" in message.lower() and "\n" not in message
