import pytest
import torch

from vitcli.data import DatasetInfo
from vitcli.errors import ConfigError
from vitcli.models import count_parameters, num_tokens
from vitcli.models.build import build_module
from vitcli.settings.specs import CNNSpec


def info(channels, h, w, classes=10):
    return DatasetInfo("x", channels, h, w, [str(i) for i in range(classes)], "natural")


def test_cifar10_parameter_count_is_the_classic_one():
    assert count_parameters(build_module(CNNSpec(), info(3, 32, 32))) == 5_852_234


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 24, 40)])
def test_adapts_to_channels_and_image_size(shape):
    model = build_module(CNNSpec(), info(*shape, classes=7))
    assert model(torch.randn(2, *shape)).shape == (2, 7)
    assert num_tokens(model) is None


def test_too_small_images_are_refused():
    with pytest.raises(ConfigError, match="at least 8x8"):
        build_module(CNNSpec(), info(1, 6, 6))
