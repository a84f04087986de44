"""Image decoding and preprocessing: many real formats and modes, broken files, decompression bombs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from normresnet_export.preprocess import (
    PRESETS,
    ImageDecodeError,
    Preprocessing,
    decode_image,
    image_files,
    load_images,
)
from tests.helpers import png_bomb


def _gradient(width: int = 48, height: int = 40) -> np.ndarray:
    """A smooth RGB picture whose content tells orientation apart (red grows right, green grows down)."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.stack([x, y, np.full_like(x, 90)], axis=2).astype(np.uint8)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_every_mode_and_format_decodes_to_rgb_with_the_right_content():
    rgb = Image.fromarray(_gradient())
    grey = rgb.convert("L")
    sixteen = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)  # 16-bit grayscale, I;16
    assert sixteen.mode == "I;16"
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    cases = {
        "png-rgb": _encode(rgb, "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=95),
        "webp": _encode(rgb, "WEBP", lossless=True),
        "png-16bit": _encode(sixteen, "PNG"),
        "png-palette-transparent": _encode(palette, "PNG", transparency=0),
        "png-rgba": _encode(rgb.convert("RGBA"), "PNG"),
        "png-la": _encode(grey.convert("LA"), "PNG"),
        "png-grey": _encode(grey, "PNG"),
        "jpeg-cmyk": _encode(rgb.convert("CMYK"), "JPEG", quality=95),
        "bmp": _encode(rgb, "BMP"),
        "gif": _encode(palette, "GIF"),
        "tiff-float": _encode(Image.fromarray(np.asarray(grey, dtype=np.float32) / 255), "TIFF"),
    }
    reference = np.asarray(rgb, dtype=np.float64)
    for name, data in cases.items():
        decoded = decode_image(data, name)
        assert decoded.mode == "RGB" and decoded.size == (48, 40), name
        pixels = np.asarray(decoded, dtype=np.float64)
        single_channel = name in ("png-16bit", "png-la", "png-grey", "tiff-float")
        expected = np.asarray(grey.convert("RGB"), dtype=np.float64) if single_channel else reference
        # Lossless formats match exactly (the 16-bit one to rounding), lossy ones to a few levels.
        tolerance = {"jpeg": 4.0, "jpeg-cmyk": 6.0, "png-palette-transparent": 12.0, "gif": 12.0}.get(
            name, 1.0
        )
        assert np.abs(pixels - expected).mean() <= tolerance, (name, np.abs(pixels - expected).mean())


def test_exif_orientation_is_applied():
    image = Image.fromarray(_gradient(48, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = _encode(image, "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data, "rotated.jpg")
    assert decoded.size == (40, 48)  # width and height swapped
    expected = np.asarray(image.transpose(Image.Transpose.ROTATE_270), dtype=np.float64)
    assert np.abs(np.asarray(decoded, dtype=np.float64) - expected).mean() < 4


def test_broken_inputs_get_a_one_line_error_naming_them(tmp_path):
    good = _encode(Image.fromarray(_gradient()), "PNG")
    files = {
        "truncated.png": good[: len(good) // 2],
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file, not a picture\n",
        "bomb.png": png_bomb(12_000, 12_000),  # 144 Mpx: over the 89 Mpx limit
        "huge.png": png_bomb(100_000, 100_000),  # beyond Pillow's own hard limit
    }
    reasons = {
        "truncated.png": "truncated",
        "empty.jpg": "empty",
        "notes.jpg": "not an image",
        "bomb.png": "decompression bomb",
        "huge.png": "more pixels than",
    }
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        for source in (path, data):
            with pytest.raises(ImageDecodeError) as error:
                decode_image(source, name)
            message = str(error.value)
            assert message.startswith(f"{name}: ") and reasons[name] in message and "\n" not in message


def test_preprocessing_matches_torchvision_exactly():
    transforms = pytest.importorskip("torchvision.transforms")
    image = Image.fromarray((np.random.default_rng(0).random((300, 451, 3)) * 255).astype(np.uint8))
    for preset, interpolation in (("imagenet", "bilinear"), ("cifar10", "bicubic")):
        base = PRESETS[preset]
        pre = Preprocessing(**{**base.to_dict(), "interpolation": interpolation})
        mode = {
            "bilinear": transforms.InterpolationMode.BILINEAR,
            "bicubic": transforms.InterpolationMode.BICUBIC,
        }
        reference = transforms.Compose(
            [
                transforms.Resize(pre.resize, interpolation=mode[interpolation]),
                transforms.CenterCrop(pre.crop),
                transforms.ToTensor(),
                transforms.Normalize(pre.mean, pre.std),
            ]
        )(image)
        assert torch.allclose(pre.apply(image), reference, atol=1e-6)
    uniform = {**PRESETS["cifar10"].to_dict(), "mean": [0.5] * 3, "std": [0.25] * 3}
    bgr = Preprocessing(**{**uniform, "channel_order": "BGR"})
    rgb = Preprocessing(**uniform)
    assert torch.equal(bgr.apply(image), rgb.apply(image).flip(0))


def test_folders_are_collected_recursively_and_decoded_in_order(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(_gradient()).save(tmp_path / "a" / "one.PNG")
    Image.fromarray(_gradient()).save(tmp_path / "a" / "b" / "two.jpg")
    (tmp_path / "a" / "readme.txt").write_text("not collected")
    (tmp_path / "a" / "b" / "bad.jpg").write_text("collected, fails to decode")
    files = image_files([tmp_path / "a"])
    assert [p.name for p in files] == ["bad.jpg", "two.jpg", "one.PNG"]  # sorted by path
    results = list(load_images([(str(p), p) for p in files], PRESETS["cifar10"], workers=2))
    assert [name for name, _ in results] == [str(p) for p in files]
    assert isinstance(results[0][1], ImageDecodeError)
    assert results[1][1].shape == (3, 32, 32) and results[1][1].dtype == torch.float32
    with pytest.raises(Exception, match="does not exist"):
        image_files([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="holds no images"):
        image_files([tmp_path / "empty"])
