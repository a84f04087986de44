"""Import-time guarantees: no torchvision or GPU needed by the library, no torch for the CLI's help."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_library_works_without_torchvision_and_without_a_gpu():
    code = (
        "import sys; sys.modules['torchvision'] = None\n"  # any `import torchvision` now raises ImportError
        "import torch, normresnet_export as nx\n"
        "assert not torch.cuda.is_available()\n"
        "for name in ('resnet20', 'tau_resnet20_nobn', 'procresnet166', 'diracnet_cifar16_1'):\n"
        "    nx.create_model(name).eval()(torch.randn(1, 3, 32, 32))\n"
        "print('ok')\n"
    )
    done = _run(code, CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_cli_module_does_not_import_torch():
    done = _run("import sys, cli; assert 'torch' not in sys.modules, 'cli imported torch'; print('ok')")
    assert done.returncode == 0, done.stderr


def test_every_public_name_resolves():
    import normresnet_export as nx

    missing = [name for name in nx.__all__ if not hasattr(nx, name)]
    assert not missing, f"normresnet_export.__all__ names what the package does not define: {missing}"


def test_the_wheel_ships_the_license_py_typed_the_catalogue_and_the_weights(tmp_path):
    """pyproject says MIT and the package is typed: the wheel a user installs must carry both, and
    the weights registry with its label files and digits weights (`normexport models` reads it)."""
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    build = ["pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(root)]
    done = subprocess.run(
        [sys.executable, "-m", *build],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "normresnet_export/py.typed" in names and "normresnet_export/models/catalogue.json" in names
    shipped = {f"normresnet_export/shipped_weights/{p.name}" for p in (root / "weights").iterdir()}
    assert "normresnet_export/shipped_weights/registry.toml" in shipped
    assert shipped <= set(names), sorted(shipped - set(names))
    license_file = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    assert b"MIT License" in zipfile.ZipFile(wheel).read(license_file)
