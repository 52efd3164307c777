"""The numbers behind `vitcli inspect`, on cases computable by hand."""

import math

import pytest
import torch
from safetensors.torch import save_file

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import ConfigError
from vitcli.lab.inspection.against import mcnemar_p
from vitcli.lab.inspection.analysis import InspectReport
from vitcli.lab.inspection.distance import grid_distances, mean_attention_distance, uniform_distance
from vitcli.lab.inspection.evolution import Evolution
from vitcli.lab.inspection.figures import CMAP, draw_report, evolution_epochs
from vitcli.lab.inspection.filters import patch_components, principal_components
from vitcli.lab.inspection.per_class import class_average
from vitcli.lab.inspection.positions import (
    neighbour_similarity,
    position_similarity,
    position_table,
    similarity_maps,
)
from vitcli.models import CNN
from vitcli.models.build import build_module
from vitcli.models.vit import sinusoidal_embedding
from vitcli.runtime import png
from vitcli.settings.specs import ViTSpec
from vitcli.training.snapshots import epoch_bytes, spaced_indices

MNIST = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")


def vit(**fields):
    torch.manual_seed(0)
    return build_module(ViTSpec(embed_dim=16, depth=2, heads=2, patch_size=7, **fields), MNIST).eval()


def test_uniform_attention_scores_the_mean_pairwise_distance_and_attention_to_oneself_zero():
    grid, cell = (4, 4), (7.0, 7.0)
    pairs = [(a, b) for a in range(16) for b in range(16)]
    by_hand = sum(7 * math.dist(divmod(a, 4), divmod(b, 4)) for a, b in pairs) / len(pairs)
    assert uniform_distance(grid, cell) == pytest.approx(by_hand, rel=1e-6)
    n = 1 + 16  # [CLS] and the patches: [CLS]'s share is left out and the rest renormalised
    uniform = [torch.full((3, 2, n, n), 1 / n) for _ in range(2)]
    torch.testing.assert_close(
        mean_attention_distance(uniform, grid, 1, cell), torch.full((2, 2), by_hand), rtol=1e-5, atol=1e-5
    )
    identity = [torch.eye(n).expand(3, 2, n, n) for _ in range(2)]
    assert mean_attention_distance(identity, grid, 1, cell).abs().max() == 0


def test_a_two_patch_case_by_hand():
    """Patch 0 puts 0.75 on patch 1 (7 px away) and 0.25 on itself, patch 1 all on itself:
    (0.75 * 7 + 0) / 2."""
    weights = [torch.tensor([[0.25, 0.75], [0.0, 1.0]]).reshape(1, 1, 2, 2)]
    assert float(mean_attention_distance(weights, (1, 2), 0, (7.0, 7.0))) == pytest.approx(2.625)
    assert uniform_distance((2, 2)) == pytest.approx((8 + 4 * math.sqrt(2)) / 16)
    assert grid_distances((2, 2))[0].tolist() == pytest.approx([0, 1, 1, math.sqrt(2)])


def test_a_sinusoidal_tables_similarity_is_symmetric_with_ones_on_its_diagonal():
    similarity = position_similarity(sinusoidal_embedding(17, 16))
    torch.testing.assert_close(similarity, similarity.T)
    torch.testing.assert_close(similarity.diagonal(), torch.ones(17))
    maps = similarity_maps(vit(pos_embed="sinusoidal"))  # the model's 16 patch rows, [CLS]'s left out
    assert maps.shape == (4, 4, 4, 4)
    torch.testing.assert_close(maps.reshape(16, 16), position_similarity(sinusoidal_embedding(17, 16)[1:]))


def test_the_position_table_leaves_the_prefix_tokens_out_and_needs_one():
    model = vit()
    with torch.no_grad():
        model.pos_embed.copy_(torch.arange(17.0).reshape(1, 17, 1).expand(1, 17, 16))
    assert position_table(model)[:, 0].tolist() == list(range(1, 17))
    with pytest.raises(ConfigError, match="--pos-embed none"):
        similarity_maps(vit(pos_embed="none"))
    with pytest.raises(ConfigError, match="not a ViT"):
        similarity_maps(CNN(image_size=(28, 28), in_channels=1, num_classes=10))


def test_neighbour_similarity_by_hand():
    """A 1x3 grid whose tables give similarity 1 between neighbours 0-1, 0 for 1-2 and 0 for 0-2."""
    table = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    adjacent, average = neighbour_similarity(position_similarity(table).reshape(1, 3, 1, 3))
    assert adjacent == pytest.approx(0.5) and average == pytest.approx(2 / 6)


def test_the_principal_components_of_filters_built_from_known_directions_come_back():
    torch.manual_seed(0)
    directions = torch.linalg.qr(torch.randn(16, 3)).Q.T  # three orthonormal 4x4 patches
    # Centred, uncorrelated coefficients of variances 25 : 4 : 1 (orthonormal columns of centred data).
    centred = torch.randn(200, 3, dtype=torch.float64)
    coefficients = torch.linalg.qr(centred - centred.mean(dim=0)).Q.float() * torch.tensor([5.0, 2.0, 1.0])
    weights = (coefficients @ directions).reshape(200, 1, 4, 4)
    patches, explained = principal_components(weights, 3)
    assert patches.shape == (3, 1, 4, 4)
    for found, known in zip(patches.reshape(3, 16), directions):
        assert abs(float(found @ known)) == pytest.approx(1.0, abs=1e-5)  # the same up to sign
    variances = (coefficients**2).sum(dim=0)
    torch.testing.assert_close(explained, variances / variances.sum(), rtol=1e-4, atol=1e-6)


def test_filters_come_from_the_first_convolution_and_not_from_shifted_patches():
    assert patch_components(vit(), 5).source == "patch projection 7x7"
    conv = patch_components(vit(tokenizer="conv", conv_layers=1), 4)
    assert conv.source == "first convolution 3x3" and conv.patches.shape == (4, 1, 3, 3)
    with pytest.raises(ConfigError, match="shifted"):
        patch_components(vit(tokenizer="spt"))
    with pytest.raises(ConfigError, match="patch embedding"):
        patch_components(CNN(image_size=(28, 28), in_channels=1, num_classes=10))


def test_class_averages_equal_a_loop_by_hand():
    torch.manual_seed(0)
    maps, labels = torch.rand(30, 2, 3, 3), torch.randint(0, 3, (30,))  # class 3 has no image
    got = class_average(maps, labels, 4)
    for k in range(4):
        members = [maps[i] for i in range(30) if labels[i] == k]
        expected = sum(members) / len(members) if members else torch.zeros(2, 3, 3)
        torch.testing.assert_close(got[k], expected)


def test_mcnemar_p_values_by_hand():
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(10, 10) == 1.0
    assert mcnemar_p(5, 0) == pytest.approx(2 * 0.5**5)
    assert mcnemar_p(3, 9) == pytest.approx(2 * sum(math.comb(12, i) for i in range(4)) / 2**12)
    assert mcnemar_p(3, 9) == mcnemar_p(9, 3)


def test_snapshot_images_are_spread_over_the_split_and_an_epochs_size_is_exact(tmp_path):
    assert spaced_indices(10, 4) == [0, 3, 6, 9] and spaced_indices(5, 5) == [0, 1, 2, 3, 4]
    assert spaced_indices(7, 1) == [0]
    path = tmp_path / "epoch.safetensors"
    save_file({"attention": torch.rand(4, 3, 7, 7).half()}, str(path))
    assert path.stat().st_size == epoch_bytes(4, 3, (7, 7))
    assert 4 * 3 * 49 * 2 < epoch_bytes(4, 3, (7, 7)) < 4 * 3 * 49 * 2 + 200  # the maps and a small header


def test_evolution_keeps_at_most_twelve_epochs_first_and_last_included():
    assert evolution_epochs(list(range(1, 6))) == [0, 1, 2, 3, 4]
    rows = evolution_epochs(list(range(1, 31)))
    assert len(rows) == 12 and rows[0] == 0 and rows[-1] == 29 and rows == sorted(set(rows))


def test_evolution_maps_are_opaque_on_one_scale_covering_them_with_a_colour_bar_that_says_so(
    tmp_path, monkeypatch
):
    """One peaked map (0.9) among maps below 0.2, as a block that locks on a patch early gives: every map
    shares one scale from 0 to the peak, drawn opaque (no blend to wash it out), and a labelled colour
    bar gives that scale."""
    epochs, blocks = 3, 2
    maps = torch.rand(epochs, 1, blocks, 4, 4) * 0.2
    maps[0, 0, 1, 2, 1] = 0.9
    image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    image[0, 0, 4:24, 12:16] = 255  # a stroke, outlined on the maps
    evolution = Evolution(tmp_path, image, [1], [17], "[CLS]", list(range(1, epochs + 1)), maps)
    report = InspectReport(tmp_path / "model.safetensors", MNIST.classes, "ViT", (4, 4), "[CLS]")
    report.evolution = evolution
    drawn, pyplot = [], png.pyplot

    def spying():  # the figure _save draws on, kept for a look after it is written
        plt = pyplot()

        class Spy:
            close = staticmethod(plt.close)

            def figure(self, **kwargs):
                drawn.append(plt.figure(**kwargs))
                return drawn[-1]

        return Spy()

    monkeypatch.setattr(png, "pyplot", spying)
    written = draw_report(report, tmp_path / "out").pictures["evolution"]
    assert [p.name for p in written] == ["evolution-val-17.png"] and written[0].is_file()
    [fig] = drawn
    [bar] = [ax for ax in fig.axes if "attention weight" in ax.get_ylabel()]
    assert bar.get_ylabel() == "[CLS] attention weight (one square-root scale for all maps)"
    shown = [im for ax in fig.axes if ax is not bar for im in ax.get_images() if im.get_cmap().name == CMAP]
    assert len(shown) == epochs * blocks
    for im in shown:
        assert im.norm.vmin == 0 and im.norm.vmax == pytest.approx(float(maps.max()))  # covers the data
        assert im.get_alpha() is None and im.get_interpolation() == "nearest"  # opaque, a patch a square
    assert all(im.norm.gamma == 0.5 for im in shown)  # square-root spaced, as the bar says
    assert bar.get_ylim() == (0, pytest.approx(0.9)) and bar.get_yscale() == "function"  # the maps' scale
    assert all(ax.collections for ax in fig.axes if ax.get_images() and ax.get_images()[0] in shown)
