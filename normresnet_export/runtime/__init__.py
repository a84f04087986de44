"""Inference backends behind one interface: eager PyTorch, TorchScript, torch.export, ONNX Runtime, OpenVINO.

backend = open_model("resnet56.onnx", device="auto")
logits = backend.run(batch)          # float32 [N, C, H, W] in, float32 [N, classes] out
print(backend.describe())            # runtime, active device/provider, precision
"""

from normresnet_export.runtime.base import Backend, DeviceError
from normresnet_export.runtime.devices import DEVICES
from normresnet_export.runtime.loader import model_kind, open_model

__all__ = ["DEVICES", "Backend", "DeviceError", "model_kind", "open_model"]
