"""Parameter and layer counts equal the values measured on the reference code.

Every number here was measured by instantiating the original, unmodified model of each
family's reference repository (torch-resnet, dayu11/tau-ResNet, ProcResNet_PyTorch, LeNo,
szagoruyko/diracnets). A wrong stride, missing bias or misplaced BatchNorm changes these counts.
"""

from __future__ import annotations

import pytest

import normresnet_export as nx

# torch-resnet, ImageNet designs: (1000-class head, "-small" with a 10-class head, count_layers)
IMAGENET = {
    "resnet18": (11_689_512, 11_173_962, 21),
    "resnet34": (21_797_672, 21_282_122, 37),
    "resnet50": (25_557_032, 23_520_842, 54),
    "resnet101": (44_549_160, 42_512_970, 105),
    "resnet152": (60_192_808, 58_156_618, 156),
    "resnet200": (64_673_832, 62_637_642, 204),
    "preact_resnet18": (11_687_720, 11_172_170, 21),
    "preact_resnet34": (21_795_880, 21_280_330, 37),
    "preact_resnet50": (25_549_352, 23_513_162, 54),
    "preact_resnet101": (44_541_480, 42_505_290, 105),
    "preact_resnet152": (60_185_128, 58_148_938, 156),
    "preact_resnet200": (64_666_152, 62_629_962, 204),
}

# torch-resnet, CIFAR designs with a 10-class head, per shortcut option: B (projection, default), A
# (identity), C (full projection), conv (3×3 projection). count_layers in the second tuple (post-act only).
CIFAR = {
    "resnet20": ((272_474, 269_722, 283_962, 292_954), (22, 20, 29, 22)),
    "resnet32": ((466_906, 464_154, 489_594, 487_386), (34, 32, 47, 34)),
    "resnet44": ((661_338, 658_586, 695_226, 681_818), (46, 44, 65, 46)),
    "resnet56": ((855_770, 853_018, 900_858, 876_250), (58, 56, 83, 58)),
    "resnet110": ((1_730_714, 1_727_962, 1_826_202, 1_751_194), (112, 110, 164, 112)),
    "resnet164": ((1_704_154, 1_661_274, 3_181_658, 2_040_026), (167, 164, 218, 167)),
    "resnet1001": ((10_328_602, 10_285_722, 19_888_922, 10_664_474), (1004, 1001, 1334, 1004)),
    "resnet1202": ((19_424_026, 19_421_274, 20_538_714, 19_444_506), (1204, 1202, 1802, 1204)),
    "preact_resnet20": ((272_282, 269_722, 283_290, 292_762), None),
    "preact_resnet32": ((466_714, 464_154, 488_474, 487_194), None),
    "preact_resnet44": ((661_146, 658_586, 693_658, 681_626), None),
    "preact_resnet56": ((855_578, 853_018, 898_842, 876_058), None),
    "preact_resnet110": ((1_730_522, 1_727_962, 1_822_170, 1_751_002), None),
    "preact_resnet164": ((1_703_258, 1_661_274, 3_165_530, 2_039_130), None),
    "preact_resnet1001": ((10_327_706, 10_285_722, 19_789_466, 10_663_578), None),
    "preact_resnet1202": ((19_423_834, 19_421_274, 20_493_914, 19_444_314), None),
}
SHORTCUTS = ("B", "A", "C", "conv")

# Wide ResNets (10-class head), widths 1, 2, 4, 8, 10.
WIDE = {
    "wide_resnet16": (175_258, 692_122, 2_749_786, 10_963_162, 17_118_874),
    "wide_resnet28": (369_690, 1_468_058, 5_849_946, 23_356_634, 36_481_434),
    "wide_resnet40": (564_122, 2_243_994, 8_950_106, 35_750_106, 55_843_994),
    "preact_wide_resnet16": (175_066, 691_674, 2_748_890, 10_961_370, 17_116_634),
    "preact_wide_resnet28": (369_498, 1_467_610, 5_849_050, 23_354_842, 36_479_194),
    "preact_wide_resnet40": (563_930, 2_243_546, 8_949_210, 35_748_314, 55_841_754),
}

# tau-ResNet: (with BatchNorm, without BatchNorm); CIFAR with 10 classes, ImageNet with 1000.
TAU = {
    20: (269_818, 268_383),
    32: (464_250, 461_943),
    44: (658_682, 655_503),
    56: (853_114, 849_063),
    110: (1_728_058, 1_720_083),
    1202: (19_421_370, 19_334_043),
    50: (25_557_032, 25_504_009),
    101: (44_549_160, 44_444_015),
    152: (60_192_808, 60_041_685),
}

# ProcResNet_PyTorch: (10 classes, 100 classes, Conv2d modules).
PROCRESNET = {
    "procresnet166": (1_715_018, 1_738_148, 165),
    "procresnet274": (2_827_850, 2_850_980, 273),
    "procresnet634": (6_537_290, 6_560_420, 633),
    "procresnet1003": (10_339_466, 10_362_596, 1002),
    "procresnet_baseline164": (1_703_706, 1_726_836, 166),
    "procresnet_baseline272": (2_816_538, 2_839_668, 274),
    "procresnet_baseline632": (6_525_978, 6_549_108, 634),
    "procresnet_baseline1001": (10_328_154, 10_351_284, 1003),
}

# LeNo repository, 1000 classes: (parameters, Conv2d modules); its `resnet` baseline is our resnetN.
LENO = {
    "lenoresnet50": (25_586_216, 54),
    "lenoresnet101": (44_578_344, 105),
    "lenoresnet152": (60_221_992, 156),
    "lenoresnet200": (64_703_016, 204),
    "lenoresnet401": (124_273_448, 405),
    "lenoresnet500": (151_932_200, 504),
    "leno_baseline_preactresnet50": (25_557_096, 53),
    "leno_baseline_preactresnet101": (44_549_224, 104),
    "leno_baseline_preactresnet152": (60_192_872, 155),
    "leno_baseline_preactresnet200": (64_673_896, 203),
    "resnet50": (25_557_032, 53),
    "resnet101": (44_549_160, 104),
    "resnet152": (60_192_808, 155),
    "resnet200": (64_673_832, 203),
}

# DiracNets, learnable parameters (CIFAR-10 / ImageNet heads).
DIRAC = {
    "diracnet18": 11_523_368,
    "diracnet34": 21_638_952,
    "diracnet_cifar16_1": 173_402,
    "diracnet_cifar16_2": 687_786,
    "diracnet_cifar16_4": 2_739_530,
    "diracnet_cifar28_1": 368_730,
    "diracnet_cifar28_2": 1_465_514,
    "diracnet_cifar28_4": 5_843_274,
    "diracnet_cifar34_1": 466_394,
    "diracnet_cifar34_2": 1_854_378,
    "diracnet_cifar40_1": 564_058,
    "diracnet_cifar40_2": 2_243_242,
    "diracnet_cifar40_4": 8_947_018,
}


def _count(name: str, **kwargs: object) -> int:
    return nx.model_info(name).parameter_count(**kwargs)


@pytest.mark.parametrize("name", sorted(IMAGENET))
def test_torch_resnet_imagenet(name):
    full, small, layers = IMAGENET[name]
    assert _count(name) == full
    assert _count(f"{name}_small") == small
    assert nx.model_info(name).layer_count() == layers == nx.model_info(f"{name}_small").layer_count()


def test_torch_resnet_wide_imagenet():
    assert _count("wide_resnet50_2") == 68_883_240
    assert _count("wide_resnet101_2") == 126_886_696


@pytest.mark.parametrize("name", sorted(CIFAR))
@pytest.mark.parametrize("index", range(4), ids=SHORTCUTS)
def test_torch_resnet_cifar_per_shortcut(name, index):
    counts = CIFAR[name][0]
    shortcut = SHORTCUTS[index]
    assert _count(name, shortcut=shortcut) == counts[index]
    post_act_layers = CIFAR[name.removeprefix("preact_")][1]  # pre-act layer counts equal post-act ones
    assert nx.model_info(name).layer_count(shortcut=shortcut) == post_act_layers[index]


@pytest.mark.parametrize("family", sorted(WIDE))
def test_wide_resnets(family):
    for width, expected in zip((1, 2, 4, 8, 10), WIDE[family], strict=True):
        assert _count(f"{family}_{width}") == expected
    assert nx.model_info("wide_resnet28_10").layer_count() == 29  # three projection shortcuts when width > 1


@pytest.mark.parametrize("depth", sorted(TAU))
def test_tau_resnet(depth):
    with_bn, without_bn = TAU[depth]
    assert _count(f"tau_resnet{depth}") == with_bn
    assert _count(f"tau_resnet{depth}_nobn") == without_bn  # the shared tau is counted once


@pytest.mark.parametrize("name", sorted(PROCRESNET))
def test_procresnet(name):
    ten, hundred, convs = PROCRESNET[name]
    assert _count(name) == ten
    assert _count(name, num_classes=100) == hundred
    assert nx.model_info(name).layer_count() == convs + 1  # + the linear classifier


@pytest.mark.parametrize("name", sorted(LENO))
def test_leno(name):
    params, convs = LENO[name]
    assert _count(name) == params
    assert nx.model_info(name).layer_count() == convs + 1


@pytest.mark.parametrize("name", sorted(DIRAC))
def test_diracnet(name):
    assert _count(name) == DIRAC[name]
