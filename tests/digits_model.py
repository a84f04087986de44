"""A digits-trained resnet20 for the tests of the low-precision deployment paths.

The low-precision gates (bf16, int8) mean something only for a model that has learnt: a
random network's logits are nearly tied, so any rounding flips its top-1 classes. The shipped
``weights/resnet20.digits.safetensors`` is used where it exists; otherwise one is trained here,
on the digits at 16×16 (their real resolution is 8×8) to keep the run short, with that
preprocessing recorded, so every command reads the digits as the model saw them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import normresnet_export as nx
from normresnet_export.data import digits
from normresnet_export.preprocess import Preprocessing

#: The digits at 16×16, normalised by the training split's statistics.
PREPROCESSING = Preprocessing(
    input_size=(3, 16, 16), mean=(0.3056,) * 3, std=(0.3237,) * 3, resize=16, crop=16
)


def prepared(images: torch.Tensor) -> torch.Tensor:
    """``uint8 [N, 3, 32, 32]`` digits through :data:`PREPROCESSING` (as ``check --data digits`` does)."""
    return torch.stack([PREPROCESSING.apply(Image.fromarray(i.permute(1, 2, 0).numpy())) for i in images])


def train_digits_resnet20(directory: Path) -> None:
    """Train resnet20 on the digits' training split (4 epochs, AdamW) and save ``resnet20.pt``."""
    torch.manual_seed(0)
    images, labels = digits.train_split()
    inputs = prepared(images)
    model = nx.create_model("resnet20")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    model.train()
    for _ in range(4):
        for index in torch.randperm(len(inputs)).split(64):
            loss = torch.nn.functional.cross_entropy(model(inputs[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    nx.save_checkpoint(
        directory / "resnet20.pt",
        model.eval(),
        arch="resnet20",
        preprocessing=PREPROCESSING,
        labels=list(digits.LABELS),
    )


#: The resnet20 trained on the digits that the project ships.
SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "resnet20.digits.safetensors"


@pytest.fixture(scope="session")
def digits_resnet20(shared_artefacts) -> Path:
    """A digits-trained resnet20 checkpoint: the shipped one, else one trained once per run (read-only)."""
    if SHIPPED.is_file():
        return SHIPPED
    return shared_artefacts.get("digits-resnet20-16px", train_digits_resnet20) / "resnet20.pt"
