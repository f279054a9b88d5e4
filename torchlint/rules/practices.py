"""TL505-TL512: the rest of the TorchFix families (checkpointing, numerics, performance,
`torch.load` safety, torchvision), under torchlint's own codes and messages.

Each rule hooks one node type (`Call`, `BinaryOperation`, `Import`) and returns at once in
a file that imports neither torch nor torchvision.
"""

from __future__ import annotations

import re

import libcst as cst

from torchlint.context import dotted_name, has_star_kwargs, imports_package, keyword_arg, positional_args
from torchlint.rule import Case, InsertAfter, PendingFix, Replace, Rule
from torchlint.rules.apis import target_version

_IMPORTS_TORCH = ("torch",)
_IMPORTS_TORCHVISION = ("torchvision",)
_BACKWARD = re.compile(r"\.backward\(")


class _TorchRule(Rule):
    """A rule that can only fire in a file that imports torch."""

    pattern: tuple[str, ...] = _IMPORTS_TORCH  # the packages whose import makes the rule apply

    def active(self) -> bool:
        cached = self.__dict__.get("_active")
        if cached is None:
            cached = self._active = imports_package(self.ctx, self.pattern)
        return cached

    def called(self, node: cst.Call) -> str | None:
        func = node.func
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return None
        return self.ctx.qualname(func)

    def spelled(self, node: cst.Call, name: str) -> str | None:
        """`name` (a torch function) written the way this call wrote its module (`torch.expm1`),
        or through a name the file binds to torch; None when the file has none."""
        func = node.func
        if isinstance(func, cst.Attribute):
            return f"{self.ctx.code_for(func.value).strip()}.{name}"
        local = next((n for n, q in self.ctx.imports.items() if q == "torch" and "." not in n), None)
        return f"{local}.{name}" if local else None

    def text(self, node: cst.CSTNode) -> str:
        return self.ctx.code_for(node).strip()

    def target(self) -> tuple[int, int]:
        return target_version(self.ctx)


def _one_arg(node: cst.Call) -> cst.BaseExpression | None:
    """The only argument of a call, when it has exactly one plain positional argument."""
    if len(node.args) == 1 and node.args[0].keyword is None and node.args[0].star == "":
        return node.args[0].value
    return None


def _is_one(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Integer):
        return expr.evaluated_value == 1
    if isinstance(expr, cst.Float):
        return expr.evaluated_value == 1.0
    return False


class CheckpointWithoutUseReentrant(_TorchRule):
    """`torch.utils.checkpoint.checkpoint(...)` without `use_reentrant`."""

    code = "TL505"
    name = "checkpoint-without-use-reentrant"
    summary = "`checkpoint(...)`/`checkpoint_sequential(...)` without an explicit `use_reentrant`"
    fix_safety = "safe"
    valid = [
        "from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x, use_reentrant=False)\n",
        "import torch.utils.checkpoint\ny = torch.utils.checkpoint.checkpoint(f, x, **options)\n",
        "from deepspeed import checkpointing\ny = checkpointing.checkpoint(f, x)\n",
    ]
    invalid = [
        Case("from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x)\n", line=2, col=5,
             fixed="from torch.utils.checkpoint import checkpoint\ny = checkpoint(f, x, use_reentrant=True)\n"),
        Case("import torch.utils.checkpoint as cp\ny = cp.checkpoint_sequential(blocks, 2, x)\n", line=2),
    ]

    _NAMES = ("torch.utils.checkpoint.checkpoint", "torch.utils.checkpoint.checkpoint_sequential")

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active() or self.called(node) not in self._NAMES:
            return
        if keyword_arg(node, "use_reentrant") is not None or has_star_kwargs(node):
            return
        if any(arg.star == "*" for arg in node.args):
            return  # *args may carry it positionally (checkpoint_sequential's 4th parameter)
        fix = None
        if node.args:
            fix = PendingFix("safe", (InsertAfter(node.args[-1].value, ", use_reentrant=True"),),
                             "pass use_reentrant=True (today's default)")
        self.report(node, (
            f"{self.text(node.func)}() without use_reentrant: torch warns, and later versions will "
            "raise; pass use_reentrant=False (recommended: works with keyword arguments, "
            "torch.autograd.grad and inputs that need no gradient) or use_reentrant=True to keep "
            "today's behaviour"
        ), fix=fix)


class NumericallyUnstableOp(_TorchRule):
    """`torch.exp(x) - 1`, `torch.log(1 + x)`, `torch.log(torch.sum(torch.exp(x), dim))`."""

    code = "TL506"
    name = "numerically-unstable-op"
    summary = "`torch.exp(x) - 1`, `torch.log(1 + x)`, `log(sum(exp(x)))`: use expm1, log1p, logsumexp (opt-in)"
    fix_safety = "safe"
    # harmless unless x is tiny (or large, for logsumexp): 97 findings in diffusers' schedulers alone
    default_enabled = False
    valid = [
        "import torch\ny = torch.expm1(x)\n",
        "import torch\ny = torch.log1p(x)\n",
        "import torch\ny = torch.exp(x) - 2\n",
        "import torch\ny = torch.log(2 + x)\n",
        "import torch\ny = torch.log(torch.sum(torch.exp(x), dim=None))\n",
        "import torch\ny = torch.log(torch.sum(torch.exp(x), 1) + 1e-6)\n",
        "import math\ny = math.exp(x) - 1\n",
    ]
    invalid = [
        Case("import torch\ny = torch.exp(x) - 1\n", line=2, col=5, fixed="import torch\ny = torch.expm1(x)\n"),
        Case("import torch\ny = torch.log(x + 1.0)\n", line=2, col=5, fixed="import torch\ny = torch.log1p(x)\n"),
        Case("import torch\ny = torch.log(torch.sum(torch.exp(s), dim=1, keepdim=True))\n", line=2, col=5,
             fixed="import torch\ny = torch.logsumexp(s, dim=1, keepdim=True)\n"),
    ]

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not self.active() or not isinstance(node.operator, cst.Subtract) or not _is_one(node.right):
            return
        left = node.left
        if not isinstance(left, cst.Call) or left.lpar or self.called(left) != "torch.exp":
            return
        arg = _one_arg(left)
        if arg is None:
            return
        spelled = self.spelled(left, "expm1")
        replacement = f"{spelled or 'torch.expm1'}({self.text(arg)})"
        self.report(node, (
            f"{self.text(node)} loses precision for small x (exp(x) is rounded near 1 before the "
            f"subtraction): use {replacement}"
        ), fix=self._replace(node, replacement, "use torch.expm1") if spelled else None)

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active() or self.called(node) != "torch.log":
            return
        arg = _one_arg(node)
        if arg is None:
            return
        if isinstance(arg, cst.BinaryOperation) and isinstance(arg.operator, cst.Add) and not arg.lpar:
            other = arg.right if _is_one(arg.left) else arg.left if _is_one(arg.right) else None
            if other is not None:
                spelled = self.spelled(node, "log1p")
                replacement = f"{spelled or 'torch.log1p'}({self.text(other)})"
                self.report(node, (
                    f"{self.text(node)} loses precision for small x (1 + x is rounded before the log): "
                    f"use {replacement}"
                ), fix=self._replace(node, replacement, "use torch.log1p") if spelled else None)
            return
        if isinstance(arg, cst.Call) and self.called(arg) == "torch.sum" and arg.args:
            inner = arg.args[0]
            if inner.keyword is not None or inner.star or not isinstance(inner.value, cst.Call):
                return
            if self.called(inner.value) != "torch.exp" or _one_arg(inner.value) is None:
                return
            rest = arg.args[1:]
            dim = keyword_arg(arg, "dim") or next((a for a in rest if a.keyword is None and not a.star), None)
            if dim is None or (isinstance(dim.value, cst.Name) and dim.value.value == "None"):
                return  # logsumexp needs a dim; sum over all of them has no one-call equivalent
            if any(a.star for a in rest) or any(a.keyword is not None and a.keyword.value not in ("dim", "keepdim")
                                                 for a in rest):
                return  # dtype=, out=: no logsumexp counterpart
            exp_arg = _one_arg(inner.value)
            assert exp_arg is not None
            pieces = [self.text(exp_arg)] + [self.ctx.code_for(a).strip().rstrip(",").strip() for a in rest]
            spelled = self.spelled(node, "logsumexp")
            replacement = f"{spelled or 'torch.logsumexp'}({', '.join(pieces)})"
            self.report(node, (
                f"log(sum(exp(x))) overflows to inf once x exceeds about 88 (float32): use {replacement}, "
                "which subtracts the maximum first"
            ), fix=self._replace(node, replacement, "use torch.logsumexp") if spelled else None)

    def _replace(self, node: cst.CSTNode, text: str, description: str) -> PendingFix | None:
        if "\n" in self.ctx.code_for(node).strip() or "#" in self.ctx.code_for(node):
            return None  # comments or line breaks inside: keep the user's layout
        return PendingFix("safe", (Replace(node, text),), description)


class SynchronousDataLoader(_TorchRule):
    """A `DataLoader` that loads batches in the main process, in code that trains."""

    code = "TL507"
    name = "synchronous-dataloader"
    summary = "a training `DataLoader` without `num_workers` (or with 0): batches load in the main process (opt-in)"
    fix_safety = None
    default_enabled = False  # a speed hint, not a bug: enable with --extend-select TL507
    valid = [
        "from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=32, num_workers=4)\n"
        "loss.backward()\n",
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "loader = DataLoader(TensorDataset(x, y), batch_size=32)\nloss.backward()\n",
        "from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=32)\n",
        "from torch.utils.data import DataLoader\nloader = DataLoader(ds, **cfg)\nloss.backward()\n",
    ]
    invalid = [
        Case("from torch.utils.data import DataLoader\nloader = DataLoader(ds, batch_size=32, shuffle=True)\n"
             "loss.backward()\n", line=2, col=10),
        Case("import torch\nloader = torch.utils.data.DataLoader(ds, num_workers=0)\nloss.backward()\n", line=2),
    ]

    _IN_MEMORY = ("torch.utils.data.TensorDataset", "torch.utils.data.dataset.TensorDataset")

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active() or self.called(node) not in ("torch.utils.data.DataLoader",
                                                         "torch.utils.data.dataloader.DataLoader"):
            return
        if not self.__dict__.setdefault("_trains", bool(_BACKWARD.search(self.ctx.source))):
            return  # evaluation scripts and tests: loading speed rarely matters there
        if has_star_kwargs(node) or any(a.star == "*" for a in node.args) or len(positional_args(node)) >= 6:
            return
        workers = keyword_arg(node, "num_workers")
        if workers is not None and not (isinstance(workers.value, cst.Integer) and workers.value.evaluated_value == 0):
            return
        dataset = node.args[0].value if node.args and node.args[0].keyword is None else None
        if dataset is not None and self._in_memory(dataset):
            return
        what = "num_workers=0" if workers is not None else "no num_workers"
        self.report(node, (
            f"DataLoader with {what}: every batch is loaded and collated in the training process, "
            "so the GPU waits for it; pass num_workers (e.g. 4, with pin_memory=True and "
            "persistent_workers=True when training on a GPU)"
        ))

    def _in_memory(self, dataset: cst.BaseExpression) -> bool:
        """A TensorDataset (its items are slices of tensors already in memory: workers only add cost)."""
        if isinstance(dataset, cst.Call):
            return self.called(dataset) in self._IN_MEMORY
        if isinstance(dataset, cst.Name):
            pattern = re.compile(rf"\b{re.escape(dataset.value)}\s*=\s*(?:[\w.]*\.)?TensorDataset\(")
            return bool(pattern.search(self.ctx.source))
        return False


class ZeroGradSetToNoneFalse(_TorchRule):
    """`zero_grad(set_to_none=False)`: writes zeros into every gradient instead of freeing them."""

    code = "TL508"
    name = "zero-grad-set-to-none-false"
    summary = "`zero_grad(set_to_none=False)`: zero-fills every gradient instead of freeing it"
    fix_safety = "unsafe"
    valid = [
        "import torch\noptimizer.zero_grad()\n",
        "import torch\nmodel.zero_grad(set_to_none=True)\n",
        "import torch\nopt.zero_grad(set_to_none=flag)\n",
    ]
    invalid = [
        Case("import torch\noptimizer.zero_grad(set_to_none=False)\n", line=2, col=1,
             fixed="import torch\noptimizer.zero_grad()\n", unsafe=True),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        # `zero_grad(set_to_none=...)` is torch's own signature: no import needed to know it
        if not isinstance(node.func, cst.Attribute) or node.func.attr.value != "zero_grad":
            return
        arg = keyword_arg(node, "set_to_none")
        if arg is None and len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star:
            arg = node.args[0]
        if arg is None or not (isinstance(arg.value, cst.Name) and arg.value.value == "False"):
            return
        fix = None
        if len(node.args) == 1:
            fix = PendingFix("unsafe", (Replace(node, f"{self.text(node.func)}()"),),
                             "free the gradients (code that reads .grad after zero_grad() sees None)")
        self.report(node, (
            "zero_grad(set_to_none=False) writes zeros into every gradient tensor each step; the "
            "default (set_to_none=True) frees them instead: less memory traffic, and the next "
            "backward() allocates fresh ones"
        ), fix=fix)


class TorchLoadWithoutWeightsOnly(_TorchRule):
    """`torch.load(...)` without `weights_only`, or with `weights_only=False`."""

    code = "TL509"
    name = "torch-load-without-weights-only"
    summary = "`torch.load` without `weights_only=True`: unpickling a file can run arbitrary code (opt-in)"
    fix_safety = "unsafe"
    # a security audit: most `weights_only=False` load the project's own checkpoints on purpose
    default_enabled = False
    valid = [
        "import torch\nstate = torch.load(path, weights_only=True)\n",
        "import torch\nstate = torch.load(path)\n",  # the default since torch 2.6 (see torch-version)
        "import torch\nstate = torch.load(path, **load_kwargs)\n",
        "import pickle\nstate = pickle.load(f)\n",
    ]
    invalid = [
        Case("import torch\nmodel = torch.load(path, weights_only=False)\n", line=2, col=9),
        Case("from torch import load\nckpt = load('ckpt.pt', map_location='cpu', weights_only=False)\n", line=2),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active() or self.called(node) not in ("torch.load", "torch.serialization.load"):
            return
        if has_star_kwargs(node) or any(a.star == "*" for a in node.args):
            return
        arg = keyword_arg(node, "weights_only")
        if arg is not None:
            if isinstance(arg.value, cst.Name) and arg.value.value == "False":
                self.report(node, (
                    "torch.load(..., weights_only=False) unpickles the file: a crafted checkpoint "
                    "runs arbitrary code on load; keep it for files you made yourself, or save "
                    "state_dicts and load them with weights_only=True"
                ))
            return
        if self.target() >= (2, 6):
            return  # torch 2.6 made weights_only=True the default: the call is already safe
        fix = None
        if node.args:
            fix = PendingFix("unsafe", (InsertAfter(node.args[-1].value, ", weights_only=True"),),
                             "load tensors only (a whole pickled model no longer loads)")
        self.report(node, (
            "torch.load without weights_only: before torch 2.6 it unpickles the file (a crafted "
            "checkpoint runs arbitrary code), from 2.6 it refuses anything but tensors and plain "
            "containers; pass weights_only=True (or False, only for files you trust)"
        ), fix=fix)


# Legacy `pretrained=True` loaded these weights; the string form is accepted by every builder.
_IMAGENET_V1_BUILDERS = re.compile(
    r"^(?:resnet(?:18|34|50|101|152)|resnext(?:50_32x4d|101_32x8d)|wide_resnet(?:50|101)_2|"
    r"vgg(?:11|13|16|19)(?:_bn)?|alexnet|densenet(?:121|161|169|201)|squeezenet1_[01]|"
    r"mobilenet_v2|mobilenet_v3_(?:large|small)|shufflenet_v2_x(?:0_5|1_0)|googlenet|inception_v3|"
    r"mnasnet(?:0_5|1_0)|efficientnet_b[0-7])$"
)


class TorchvisionPretrained(_TorchRule):
    """torchvision model builders called with the removed `pretrained=` / `pretrained_backbone=`."""

    code = "TL510"
    name = "torchvision-pretrained"
    summary = "torchvision `pretrained=True` / `pretrained_backbone=`: deprecated, use `weights=`"
    fix_safety = "safe"
    pattern = _IMPORTS_TORCHVISION
    valid = [
        "import torchvision\nm = torchvision.models.resnet50(weights=None)\n",
        "from torchvision.models import resnet50, ResNet50_Weights\nm = resnet50(weights=ResNet50_Weights.DEFAULT)\n",
        "from torchvision.models.vgg import make_layers, cfgs\nlayers = make_layers(cfgs['D'], False)\n",
        "import timm\nm = timm.create_model('resnet50', pretrained=True)\n",
    ]
    invalid = [
        Case("import torchvision\nm = torchvision.models.resnet50(pretrained=True)\n", line=2, col=5,
             fixed="import torchvision\nm = torchvision.models.resnet50(weights=\"IMAGENET1K_V1\")\n"),
        Case("from torchvision import models\nm = models.vgg16(pretrained=False)\n", line=2,
             fixed="from torchvision import models\nm = models.vgg16(weights=None)\n"),
        Case("import torchvision\nm = torchvision.models.detection.fasterrcnn_resnet50_fpn(pretrained_backbone=True)\n",
             line=2),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active():
            return
        qual = self.called(node)
        if qual is None or not qual.startswith("torchvision.models."):
            return
        builder = qual.rsplit(".", 1)[1]
        if not builder[:1].islower() or builder.startswith(("make_", "get_", "list_")) or "_Weights" in builder:
            return
        pretrained = keyword_arg(node, "pretrained")
        backbone = keyword_arg(node, "pretrained_backbone")
        positional = None
        if pretrained is None and node.args and node.args[0].keyword is None and not node.args[0].star:
            first = node.args[0].value
            if isinstance(first, cst.Name) and first.value in ("True", "False"):
                positional = node.args[0]
        target = pretrained or positional
        if target is None and backbone is None:
            return
        if target is None:
            assert backbone is not None
            self.report(node, (
                f"{builder}(pretrained_backbone=...) is deprecated since torchvision 0.13 (it "
                "warns, and newer releases may drop it): pass weights_backbone= (a weights enum such as "
                "ResNet50_Weights.IMAGENET1K_V1, or None)"
            ), fix=self._backbone_fix(backbone))
            return
        value = target.value
        fix = None
        if isinstance(value, cst.Name) and value.value == "False" and backbone is None:
            fix = PendingFix("safe", (Replace(target, "weights=None"),), "weights=None")
        elif (isinstance(value, cst.Name) and value.value == "True" and backbone is None
              and qual.count(".") == 2 and _IMAGENET_V1_BUILDERS.match(builder)):
            fix = PendingFix("safe", (Replace(target, 'weights="IMAGENET1K_V1"'),),
                             "the weights pretrained=True loaded")
        self.report(node, (
            f"{builder}(pretrained=...) is deprecated since torchvision 0.13 (it warns, and newer "
            "releases may drop it): pass weights= (a weights enum, its name such as \"IMAGENET1K_V1\" — what "
            "pretrained=True loaded — or \"DEFAULT\" for the best available; None for random init)"
        ), fix=fix)

    @staticmethod
    def _backbone_fix(arg: cst.Arg) -> PendingFix | None:
        if isinstance(arg.value, cst.Name) and arg.value.value == "False":
            return PendingFix("safe", (Replace(arg, "weights_backbone=None"),), "weights_backbone=None")
        return None


class TorchvisionV2Deprecated(_TorchRule):
    """`torchvision.transforms.v2.ToTensor`: deprecated in the v2 API."""

    code = "TL511"
    name = "torchvision-v2-deprecated"
    summary = "`transforms.v2.ToTensor()`: deprecated; use `ToImage()` + `ToDtype(torch.float32, scale=True)`"
    fix_safety = None
    pattern = _IMPORTS_TORCHVISION
    valid = [
        "from torchvision import transforms\nt = transforms.ToTensor()\n",
        "from torchvision.transforms import v2\nt = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])\n",
    ]
    invalid = [
        Case("from torchvision.transforms import v2\nt = v2.Compose([v2.ToTensor()])\n", line=2, col=17),
        Case("from torchvision.transforms.v2 import ToTensor\nt = ToTensor()\n", line=2),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active() or self.called(node) != "torchvision.transforms.v2.ToTensor":
            return
        self.report(node, (
            "v2.ToTensor() is deprecated in torchvision's v2 transforms: use "
            "v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]), which does the same "
            "conversion and keeps the tv_tensors types"
        ))


class TorchvisionSingletonImport(_TorchRule):
    """`import torchvision.models as models`: the same module as `from torchvision import models`."""

    code = "TL512"
    name = "torchvision-singleton-import"
    summary = "`import torchvision.models as models`: write `from torchvision import models` (opt-in)"
    fix_safety = "safe"
    default_enabled = False  # style only: nothing runs differently
    pattern = _IMPORTS_TORCHVISION
    valid = [
        "from torchvision import models\n",
        "import torchvision.models as tvm\n",
        "import torchvision.models\n",
    ]
    invalid = [
        Case("import torchvision.models as models\n", line=1, col=1, fixed="from torchvision import models\n"),
        Case("import torchvision.transforms as transforms, torch\n", line=1),
    ]

    def visit_Import(self, node: cst.Import) -> None:
        if not self.active():
            return
        for alias in node.names:
            name = dotted_name(alias.name)
            if name is None or alias.asname is None or not isinstance(alias.asname.name, cst.Name):
                continue
            parts = name.split(".")
            if len(parts) != 2 or parts[0] != "torchvision" or alias.asname.name.value != parts[1]:
                continue
            fix = None
            if len(node.names) == 1:
                fix = PendingFix("safe", (Replace(node, f"from torchvision import {parts[1]}"),),
                                 f"from torchvision import {parts[1]}")
            self.report(node, (
                f"`import {name} as {parts[1]}` says the same as `from torchvision import {parts[1]}`, "
                "the form torchvision's documentation uses"
            ), fix=fix)
