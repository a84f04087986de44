"""Charts a person reads at a glance: the check's throughput chart and the training curves."""

from __future__ import annotations

from PIL import Image

from normresnet_export.check.plot import backend_name, plot_throughput
from normresnet_export.check.report import CheckReport
from trainers.records import write_curves


def _row(label: str, batch: int, images_per_s: float, provider: str, precision: str = "float32") -> dict:
    return {
        "label": label,
        "batch": batch,
        "images_per_s": images_per_s,
        "provider": provider,
        "precision": precision,
    }


def test_the_throughput_chart_is_sized_for_a_readme(tmp_path):
    rows = [
        _row("eager (unfolded)", 1, 3.0, "cpu"),  # 3 images/s next to 30,000: a log axis shows both
        _row("eager (unfolded)", 32, 90.0, "cpu"),
        _row("onnxruntime (m.onnx)", 1, 2_000.0, "CPUExecutionProvider"),
        _row("onnxruntime (m.onnx)", 32, 30_000.0, "CPUExecutionProvider"),
        _row("onnxruntime (h.onnx)", 32, 40_000.0, "CUDAExecutionProvider", "float16"),  # one batch only
    ]
    report = CheckReport(
        data="random normal inputs",
        samples=8,
        reference={"label": "eager (unfolded)", "provider": "cpu"},
        reference_accuracy=None,
        agreements=[],
        latency=rows,
    )
    path = plot_throughput(report, tmp_path / "throughput.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1000, 560)
    assert backend_name(rows[2]) == "onnxruntime (m.onnx) · CPU · float32"
    assert backend_name(rows[4]) == "onnxruntime (h.onnx) · CUDA · float16"


def test_the_training_curves_gain_a_learning_rate_panel(tmp_path):
    history = [
        {
            "epoch": epoch,
            "train_loss": 2.0 / epoch,
            "test_loss": 2.1 / epoch,
            "train_top1": 20.0 * epoch,
            "test_top1": 18.0 * epoch,
            "lr": 0.1 if epoch < 3 else 0.01,
        }
        for epoch in (1, 2, 3, 4)
    ]
    path = write_curves(tmp_path, history, title="resnet20 on digits")
    with Image.open(path) as image:
        assert image.size == (1500, 400)  # three panels: loss, accuracy, learning rate
