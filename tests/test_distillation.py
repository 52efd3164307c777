"""vitcli/distillation.py and `--teacher`: DeiT's distillation token, trained against a teacher."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import plain_text, run, train
from torch import nn

from vitcli.data.preprocessing import Preprocessing
from vitcli.lab.evaluate import eval_checkpoint
from vitcli.models import count_parameters
from vitcli.models.distillation import DistillationLoss, Teacher
from vitcli.models.vit import ViT
from vitcli.training.checkpoint import load_checkpoint, read_metadata
from vitcli.training.teacher import load_teacher


class FirstPixels(nn.Module):
    """A stand-in teacher: its logits for 3 classes are the first 3 pixels it is given; it records them."""

    def forward(self, x):
        self.seen = x
        return x.flatten(1)[:, :3]


def _teacher(student=Preprocessing((0.5,), (0.25,)), own=Preprocessing((0.1,), (0.3,))):
    return Teacher(Path("teacher"), "cnn", 0, FirstPixels(), student, own)


def test_the_loss_is_half_cross_entropy_on_the_labels_and_half_on_the_teachers_classes():
    teacher = _teacher(own=Preprocessing((0.5,), (0.25,)))  # same normalisation: the teacher sees x
    x = torch.tensor([[0.3, 2.0, -1.0, 0.0], [1.5, -0.5, 0.2, 0.0]]).reshape(2, 1, 2, 2)  # teacher: 1, 0
    class_logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    dist_logits = torch.tensor([[0.0, 1.0, 0.0], [-2.0, 0.0, 3.0]])
    labels = torch.tensor([0, 2])
    loss, scored = DistillationLoss(teacher)((class_logits, dist_logits), x, labels, 0.0)

    def ce(logits, targets):  # -log softmax at the target, averaged, by hand
        return sum(-(row[t] - row.exp().sum().log()) for row, t in zip(logits, targets)) / len(targets)

    expected = 0.5 * ce(class_logits, [0, 2]) + 0.5 * ce(dist_logits, [1, 0])
    assert torch.isclose(loss, expected, atol=1e-6)
    assert torch.allclose(scored, (class_logits + dist_logits) / 2)


def test_label_smoothing_acts_on_the_class_head_only():
    teacher = _teacher(own=Preprocessing((0.5,), (0.25,)))
    x = torch.randn(4, 1, 2, 2)
    outputs = (torch.randn(4, 3), torch.randn(4, 3))
    labels = torch.tensor([0, 1, 2, 0])
    plain, _ = DistillationLoss(teacher)(outputs, x, labels, 0.0)
    smoothed, _ = DistillationLoss(teacher)(outputs, x, labels, 0.1)
    by_hand = nn.functional.cross_entropy(outputs[0], labels, label_smoothing=0.1) / 2
    by_hand += nn.functional.cross_entropy(outputs[1], x.flatten(1)[:, :3].argmax(1)) / 2
    assert torch.isclose(smoothed, by_hand) and not torch.isclose(smoothed, plain)


def test_the_teacher_sees_the_pixels_prepared_its_own_way():
    teacher = _teacher()
    pixels = torch.randint(0, 256, (2, 1, 4, 4)).float()
    student_input = (pixels / 255 - 0.5) / 0.25
    teacher.predict(student_input)
    assert torch.allclose(teacher.model.seen, (pixels / 255 - 0.1) / 0.3, atol=1e-5)
    assert teacher.seconds > 0


def report_info(checkpoint):
    return load_checkpoint(checkpoint).info


def test_a_distilled_vit_returns_both_heads_in_training_and_their_mean_in_evaluation():
    model = ViT(image_size=(28, 28), in_channels=1, num_classes=10, distilled=True)
    assert model.num_prefix_tokens == 2 and model.num_tokens == 18
    # the plain ViT's 27,978, a distillation token and its position (2 x 32), and its head (330)
    assert count_parameters(model) == 28_372
    x = torch.randn(2, 1, 28, 28)
    model.eval()
    class_logits, dist_logits = model.train()(x)
    model.eval()
    assert torch.allclose(model(x), (class_logits + dist_logits) / 2, atol=1e-6)


@pytest.fixture
def cnn_teacher(tmp_path, mnist_dir):
    result = train(tmp_path, mnist_dir, "--model", "cnn", "--subset", 200, "--name", "cnn")
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "cnn"


def test_a_distilled_run_shows_the_teachers_cost_and_evaluates_without_the_teacher(
    tmp_path, mnist_dir, cnn_teacher
):
    args = ("--embed-dim", 16, "--teacher", cnn_teacher, "--name", "student")
    result = train(tmp_path, mnist_dir, *args)
    assert result.exit_code == 0, result.output
    text = plain_text(result.output)
    assert "teacher time (cnn, " in text and "tokens per image 18" in text
    checkpoint = tmp_path / "runs" / "student" / "model.safetensors"
    metrics = json.loads(read_metadata(checkpoint)["metrics"])
    assert metrics["teacher"]["kind"] == "cnn" and 0 < metrics["teacher"]["share"] < 1
    teacher = load_teacher(cnn_teacher, report_info(checkpoint), Preprocessing((0.1,), (0.3,)))
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.model.parameters())
    assert teacher.predict(torch.randn(2, 1, 28, 28)).grad_fn is None
    shutil.rmtree(cnn_teacher)  # the teacher is gone: eval and attention read the file alone
    report = eval_checkpoint(checkpoint)
    assert report.result.accuracy == metrics["test_accuracy"]
    shown = run("attention", checkpoint, "--json", "--out", tmp_path / "pictures")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["grid_size"] == [4, 4]


def test_a_teacher_of_other_classes_is_refused_before_a_run_directory_is_made(
    tmp_path, mnist_dir, cifar10_dir
):
    teacher = train(tmp_path, cifar10_dir, "--model", "cnn", "--dataset", "cifar10", "--name", "cifar")
    assert teacher.exit_code == 0, teacher.output
    result = train(tmp_path, mnist_dir, "--teacher", tmp_path / "runs" / "cifar", "--name", "student")
    assert result.exit_code != 0 and "Traceback" not in result.output
    said = plain_text(result.output)
    assert "predicts 10 classes (airplane, automobile, bird, ...), the data has 10 (0 - zero, 1 - one" in said
    assert not (tmp_path / "runs" / "student").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--teacher", "nowhere"), "--teacher: checkpoint nowhere does not exist"),
        (("--teacher", "x", "--pool", "gap"), "--teacher needs --pool cls"),
    ],
)
def test_bad_teachers_get_one_line(tmp_path, mnist_dir, args, message):
    result = train(tmp_path, mnist_dir, *args)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message in plain_text(result.output)
