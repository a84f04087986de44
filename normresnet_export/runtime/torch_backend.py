"""torch backends: an eager module (a checkpoint, folded or not), a TorchScript file or a ``.pt2`` program.

All run under ``torch.inference_mode`` on the device :func:`~normresnet_export.runtime.devices.torch_device`
chose. float16 artefacts carry half weights behind float32 input and output, so they need
nothing special here; an eager model can be asked to run in float16 the same way, or under
bfloat16 autocast.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from normresnet_export.metadata import ModelMetadata
from normresnet_export.runtime.base import Backend, as_batch


class TorchBackend(Backend):
    """Any callable torch module on one device."""

    def __init__(
        self,
        module: Callable[[torch.Tensor], torch.Tensor],
        *,
        name: str,
        label: str,
        metadata: ModelMetadata,
        device: torch.device,
        fallback: str | None = None,
        precision: str | None = None,
    ) -> None:
        """Wrap ``module``, which already sits on ``device``.

        Args:
            module: The model.
            name: ``"eager"``, ``"torchscript"`` or ``"torch.export"``.
            label: Short human name for tables.
            metadata: What the model carries (arch, preprocessing, labels, precision, …).
            device: Where ``module`` is (see :func:`~normresnet_export.runtime.devices.torch_device`).
            fallback: Why this is the CPU although CUDA was asked for, if it is.
            precision: What ``module`` computes in when it is not what the file holds
                (``bfloat16`` under autocast); default: the metadata's precision.

        Raises:
            OutputError: The metadata's labels are not one per class.
        """
        self.module, self.torch_device, self.fallback = module, device, fallback
        self.name, self.label, self.metadata = name, label, metadata
        self.device = str(device)
        self.precision = precision or metadata.precision
        if device.type == "cuda":
            # float32 means float32: TF32 convolutions (cuDNN's default) round to 10-bit mantissas.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            self.provider = f"torch CUDA ({torch.cuda.get_device_name(device)})"
        else:
            self.provider = f"torch CPU ({torch.get_num_threads()} threads)"
        self.check_labels()

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        batch = as_batch(batch)
        with torch.inference_mode():
            return self.module(batch.to(self.torch_device, torch.float32)).float().cpu()

    def bind(self, batch: torch.Tensor, *, include_copies: bool = True) -> Callable[[], None]:
        batch = as_batch(batch)
        if include_copies or self.torch_device.type == "cpu":

            def round_trip() -> None:
                self.run(batch)

            return round_trip
        placed = batch.to(self.torch_device, torch.float32)

        def call() -> None:
            with torch.inference_mode():
                self.module(placed)
            torch.cuda.synchronize(self.torch_device)

        return call
