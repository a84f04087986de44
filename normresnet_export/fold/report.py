"""What a fold did, what it left alone and why, and how far the folded logits moved."""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch.fx as fx

from normresnet_export.compare import Deviation, shortfall


@dataclass(frozen=True)
class Unfolded:
    """A node the fold left in place.

    Attributes:
        node: The module's qualified name (or the graph node's name for a function call).
        op: What it is, e.g. ``"BatchNorm2d -> ChannelAffine"``.
        reason: Why folding it would not be exact.
    """

    node: str
    op: str
    reason: str


@dataclass(frozen=True)
class FoldTolerance:
    """Acceptable relative deviation per precision.

    In float32 the limit is ``max(float32, noise_factor * noise)``, where ``noise`` is the
    unfolded model's own float32 error against float64: rounding noise in the original and
    in the folded model is uncorrelated, so even an exact fold shows about ``sqrt(2) * noise``,
    and a fold may not make float32 results clearly worse than float32 arithmetic already does.
    """

    float32: float
    float64: float
    noise_factor: float = 4.0


@dataclass
class FoldReport:
    """The fold's account of itself (``normexport fold --json`` prints :meth:`to_dict`).

    Attributes:
        ops_before: Graph operations by type before folding (``BatchNorm2d``, ``add``, …).
        ops_after: The same after folding.
        folded: How many times each fold pattern was applied.
        unfolded: Every node left in place, with the reason.
        parameters_before: Learnable parameters before folding.
        parameters_after: Learnable parameters after folding.
        input_size: Input (C, H, W) the deviations were measured on, or ``None`` if unchecked.
        deviations: ``{"float32": …, "float64": …}`` measured deviations (empty if unchecked).
        float32_noise: The unfolded model's own relative float32 error against float64.
        tolerance: The tolerance the deviations are held to.
        stream_bn_removed: Qualified names of the residual-stream BatchNorms removed (their
            scale moved into the layers after them, their shift into the stream offset);
            ``None`` when that pass did not run (``keep_stream_bn``, or a report written
            before it existed). A folded checkpoint is rebuilt from this list.
    """

    ops_before: dict[str, int]
    ops_after: dict[str, int]
    folded: dict[str, int]
    unfolded: list[Unfolded]
    parameters_before: int
    parameters_after: int
    input_size: tuple[int, ...] | None = None
    deviations: dict[str, Deviation] = field(default_factory=dict)
    float32_noise: float | None = None
    tolerance: FoldTolerance | None = None
    stream_bn_removed: list[str] | None = None

    @property
    def checked(self) -> bool:
        """Whether deviations were measured."""
        return bool(self.deviations)

    def limit(self, precision: str) -> float | None:
        """The relative deviation allowed in ``precision`` ("float32" or "float64")."""
        if self.tolerance is None:
            return None
        if precision == "float64":
            return self.tolerance.float64
        noise = self.float32_noise if self.float32_noise is not None else 0.0
        return max(self.tolerance.float32, self.tolerance.noise_factor * noise)

    @property
    def passed(self) -> bool:
        """True unless an output overflowed, a deviation exceeds its limit, or a top-1 prediction changed."""
        if not self.checked:
            return True
        return all(
            d.finite
            and d.max_rel is not None
            and d.max_rel <= (self.limit(precision) or 0.0)
            and d.top1_agreement == 1.0
            for precision, d in self.deviations.items()
        )

    def verdict(self) -> bool | None:
        """What a record says: :attr:`passed` when the check ran, ``None`` (not judged) when it did not.

        :attr:`passed` is True for an unchecked fold, so that callers do not stop on it; a record
        written into a file must not claim a check that never ran.
        """
        return self.passed if self.checked else None

    def failure(self) -> str | None:
        """Why the check failed, in one sentence for a person (``None`` when it passed or did not run)."""
        for precision, found in self.deviations.items():
            reason = shortfall(
                found,
                self.limit(precision),
                model="the folded model",
                reference="the unfolded model",
                precision=precision,
            )
            if reason is not None:
                return reason
        return None

    @property
    def reference_overflowed(self) -> bool:
        """The unfolded model's own outputs were not finite: no fold of it can be verified."""
        return any(not found.reference_finite for found in self.deviations.values())

    def stream_bn_counts(self) -> dict[str, int]:
        """Residual-stream BatchNorms removed, and BatchNorms kept as ChannelAffines (each with a reason)."""
        kept = sum(1 for u in self.unfolded if u.op.endswith("→ ChannelAffine"))
        return {"removed": len(self.stream_bn_removed or ()), "kept": kept}

    def unfolded_summary(self, examples: int = 3) -> list[dict[str, Any]]:
        """The unfolded nodes grouped by (op, reason): count and the first few node names."""
        groups: dict[tuple[str, str], list[str]] = {}
        for item in self.unfolded:
            groups.setdefault((item.op, item.reason), []).append(item.node)
        return [
            {"op": op, "reason": reason, "count": len(nodes), "examples": nodes[:examples]}
            for (op, reason), nodes in groups.items()
        ]

    def to_compact_dict(self) -> dict[str, Any]:
        """The compact account exports carry in their metadata: patterns, kept groups, deviations, verdict.

        A dict (JSON-compatible), like :meth:`to_dict` but without the per-node detail; the human
        account is what ``normexport fold`` prints.
        """
        return {
            "folded": dict(self.folded),
            "kept": self.unfolded_summary(examples=1),
            "stream_bn": self.stream_bn_counts(),
            "parameters": [self.parameters_before, self.parameters_after],
            "input_size": list(self.input_size) if self.input_size else None,
            "deviations": {k: asdict(v) for k, v in self.deviations.items()},
            "limits": {precision: self.limit(precision) for precision in self.deviations},
            "checked": self.checked,
            "passed": self.verdict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict of every field, plus ``checked`` and ``passed``."""
        data = asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        data["limits"] = {precision: self.limit(precision) for precision in self.deviations}
        data["checked"], data["passed"] = self.checked, self.verdict()
        data["stream_bn"] = self.stream_bn_counts()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoldReport:
        """Rebuild a report from :meth:`to_dict` output (as stored in folded checkpoints)."""
        return cls(
            ops_before=dict(data["ops_before"]),
            ops_after=dict(data["ops_after"]),
            folded=dict(data["folded"]),
            unfolded=[Unfolded(**u) for u in data["unfolded"]],
            parameters_before=int(data["parameters_before"]),
            parameters_after=int(data["parameters_after"]),
            input_size=tuple(data["input_size"]) if data.get("input_size") else None,
            deviations={k: Deviation(**v) for k, v in (data.get("deviations") or {}).items()},
            float32_noise=data.get("float32_noise"),
            tolerance=FoldTolerance(**data["tolerance"]) if data.get("tolerance") else None,
            stream_bn_removed=(
                [str(name) for name in data["stream_bn_removed"]]
                if data.get("stream_bn_removed") is not None
                else None
            ),
        )


_FUNCTION_NAMES = {operator.add: "add", operator.mul: "mul", operator.getitem: "getitem"}
#: Modules counted under the name of the function they compute, so that ``nn.ReLU()`` and
#: ``F.relu`` make one row of the fold table.
_MODULE_NAMES = {"ReLU": "relu"}


def count_ops(graph_module: fx.GraphModule) -> dict[str, int]:
    """Operations of a traced model by type: module class names, function and method names."""
    counts: Counter[str] = Counter()
    modules = dict(graph_module.named_modules())
    for node in graph_module.graph.nodes:
        if node.op == "call_module":
            name = type(modules[node.target]).__name__
            counts[_MODULE_NAMES.get(name, name)] += 1
        elif node.op == "call_function":
            counts[_FUNCTION_NAMES.get(node.target, getattr(node.target, "__name__", str(node.target)))] += 1
        elif node.op == "call_method":
            counts[str(node.target)] += 1
    return dict(sorted(counts.items()))
