"""Classes of installed third-party packages, read from their source without importing them.

A project class derived from `lightning.LightningModule`, `transformers.PreTrainedModel`,
`diffusers.ModelMixin`, a timm or torchvision model, ... is a Module class. The index learns
that from the package's own source: the file of a module is located with importlib's path
finder (which reads directory listings and never executes the package), and scanned with the
same cheap text scan as the project's files (`project.summarize`). Re-exports are followed
by the index as for project modules; star imports of a package's `__init__` a few levels.

Where a package is not installed, a shipped table of well-known bases answers instead.
Everything is memoised per process (and per package version), so that the filesystem is
read once per module however many files and classes ask.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchlint.project import ModuleSummary

# a third-party file larger than this is not scanned (generated tables, vendored blobs)
_MAX_SOURCE_BYTES = 4 * 1024 * 1024

# Well-known bases, used only when the package is not installed (its source wins when it is).
# True: a Module class; False: a class of the same frameworks that is not one (commonly
# subclassed next to the Modules: data modules, callbacks, configs, pipelines).
_LIGHTNING_PACKAGES = ("lightning", "lightning.pytorch", "pytorch_lightning")
_LIGHTNING_MODULE_PATHS = ("", ".core", ".core.module", ".core.lightning")


def _lightning(name: str, submodules: tuple[str, ...]) -> list[str]:
    return [f"{pkg}{sub}.{name}" for pkg in _LIGHTNING_PACKAGES for sub in submodules]


WELL_KNOWN_MODULES = frozenset(
    _lightning("LightningModule", _LIGHTNING_MODULE_PATHS)
    + [
        "lightning.fabric.wrappers._FabricModule",
        "transformers.PreTrainedModel", "transformers.modeling_utils.PreTrainedModel",
        "diffusers.ModelMixin", "diffusers.models.ModelMixin", "diffusers.models.modeling_utils.ModelMixin",
        "torch_geometric.nn.MessagePassing", "torch_geometric.nn.conv.MessagePassing",
        "torch_geometric.nn.conv.message_passing.MessagePassing",
        "torch_geometric.nn.models.MLP", "torch_geometric.nn.MLP",
        "timm.models.vision_transformer.VisionTransformer", "timm.models.VisionTransformer",
        "timm.models.resnet.ResNet", "timm.models.ResNet",
        "timm.models.efficientnet.EfficientNet", "timm.models.EfficientNet",
        "timm.models.convnext.ConvNeXt", "timm.models.ConvNeXt",
        "timm.models.swin_transformer.SwinTransformer", "timm.models.SwinTransformer",
        "torchvision.models.ResNet", "torchvision.models.resnet.ResNet",
        "torchvision.models.VGG", "torchvision.models.vgg.VGG",
        "torchvision.models.VisionTransformer", "torchvision.models.vision_transformer.VisionTransformer",
        "torchvision.models.resnet.BasicBlock", "torchvision.models.resnet.Bottleneck",
        "torchvision.ops.misc.ConvNormActivation", "torchvision.ops.FrozenBatchNorm2d",
        "torchvision.ops.misc.FrozenBatchNorm2d",
        "fastai.torch_core.Module", "fastai.layers.Module",
    ]
)

WELL_KNOWN_NON_MODULES = frozenset(
    _lightning("LightningDataModule", ("", ".core", ".core.datamodule"))
    + _lightning("Callback", ("", ".callbacks", ".callbacks.callback"))
    + _lightning("Trainer", ("", ".trainer", ".trainer.trainer"))
    + [
        "transformers.PretrainedConfig", "transformers.PreTrainedConfig",
        "transformers.configuration_utils.PretrainedConfig",
        "transformers.modeling_utils.ModuleUtilsMixin",
        "diffusers.DiffusionPipeline", "diffusers.pipelines.DiffusionPipeline",
        "diffusers.pipelines.pipeline_utils.DiffusionPipeline",
        "diffusers.configuration_utils.ConfigMixin", "diffusers.ConfigMixin",
        "torch_geometric.data.Dataset", "torch_geometric.data.InMemoryDataset",
        "torchvision.datasets.VisionDataset", "torchvision.datasets.vision.VisionDataset",
    ]
)


def well_known(qualname: str) -> bool | None:
    """The shipped answer for a class of a package that is not installed (None: not listed)."""
    if qualname in WELL_KNOWN_MODULES:
        return True
    if qualname in WELL_KNOWN_NON_MODULES:
        return False
    top, _, last = qualname.partition(".")
    # every transformers model family has its `<Name>PreTrainedModel` base
    if top == "transformers" and qualname.rsplit(".", 1)[-1].endswith("PreTrainedModel"):
        return True
    return None


def _search_path() -> tuple[str, ...]:
    """sys.path without the current directory: what is installed, the same in every door
    (the CLI's and flake8's `sys.path[0]` differ; the project itself is indexed already)."""
    cwd = os.getcwd()
    out = []
    for entry in sys.path:
        if not entry or entry == "." or os.path.abspath(entry) == cwd:
            continue
        out.append(entry)
    return tuple(out)


class InstalledPackages:
    """Source summaries of installed modules by dotted name, memoised (None: not found)."""

    def __init__(self, search_path: tuple[str, ...] | None = None) -> None:
        self.search_path = list(search_path if search_path is not None else _search_path())
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}
        self._summaries: dict[str, ModuleSummary | None] = {}
        self._versions: dict[str, str] = {}
        self._mentions: dict[tuple[str, str], bool] = {}

    def _spec(self, module: str) -> importlib.machinery.ModuleSpec | None:
        if module in self._specs:
            return self._specs[module]
        self._specs[module] = None  # cycle guard
        parent, _, _ = module.rpartition(".")
        spec = None
        try:
            if parent:
                parent_spec = self._spec(parent)
                locations = parent_spec.submodule_search_locations if parent_spec is not None else None
                if locations:
                    spec = importlib.machinery.PathFinder.find_spec(module, list(locations))
            else:
                spec = importlib.machinery.PathFinder.find_spec(module, self.search_path)
                if spec is None:
                    spec = _editable_spec(module)
        except (ImportError, OSError, ValueError):
            spec = None
        self._specs[module] = spec
        return spec

    def is_installed(self, top: str) -> bool:
        """Whether a top-level package or module can be found."""
        return self._spec(top) is not None

    def summary(self, module: str) -> ModuleSummary | None:
        """The text scan of an installed module's source (None: not found, not Python source)."""
        if module in self._summaries:
            return self._summaries[module]
        from torchlint.project import summarize

        self._summaries[module] = None
        spec = self._spec(module)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(".py"):
            return None
        try:
            with open(origin, "rb") as handle:
                data = handle.read(_MAX_SOURCE_BYTES + 1)
        except OSError:
            return None
        if len(data) > _MAX_SOURCE_BYTES:
            return None
        text = data.decode("utf-8", "replace")
        is_package = os.path.basename(origin) == "__init__.py"
        result = summarize(text, module, is_package)
        self._summaries[module] = result
        return result

    def may_define(self, module: str, name: str) -> bool:
        """Whether a module could bind `name` (cheap: a byte search, no scan): a plain module
        whose text never mentions the name is not worth scanning; a package may re-export it
        through further star imports, so it always may."""
        key = (module, name)
        if key in self._mentions:
            return self._mentions[key]
        spec = self._spec(module)
        origin = spec.origin if spec is not None else None
        answer = False
        if origin is not None and origin.endswith(".py"):
            if module in self._summaries or os.path.basename(origin) == "__init__.py":
                answer = True
            else:
                try:
                    with open(origin, "rb") as handle:
                        answer = name.encode() in handle.read(_MAX_SOURCE_BYTES + 1)
                except OSError:
                    answer = False
        self._mentions[key] = answer
        return answer

    def stamp(self, module: str) -> str:
        """What a cached answer that read this module depends on: the package version and
        the file's mtime and size ("-" when the module is not installed)."""
        spec = self._spec(module)
        origin = spec.origin if spec is not None else None
        if origin is None:
            return "-"
        try:
            stat = os.stat(origin)
        except OSError:
            return "-"
        return f"{self.version(module.partition('.')[0])}:{stat.st_mtime_ns}:{stat.st_size}"

    def version(self, top: str) -> str:
        """The installed version of a top-level package ("" when not installed): what cached
        findings that depended on it are keyed by."""
        if top in self._versions:
            return self._versions[top]
        version = ""
        spec = self._spec(top)
        if spec is not None:
            version = _distribution_version(top)
            if not version and spec.origin and os.path.exists(spec.origin):
                stat = os.stat(spec.origin)
                version = f"mtime:{stat.st_mtime_ns}:{stat.st_size}"
        self._versions[top] = version
        return version


def _editable_spec(top: str) -> importlib.machinery.ModuleSpec | None:
    """A top-level package installed in editable mode through setuptools' finder (it maps
    names to source directories; asking it runs no code of the package)."""
    for finder in sys.meta_path:
        if "editable" not in type(finder).__name__.lower() and "editable" not in getattr(finder, "__name__", "").lower():
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(top, None)
        except Exception:  # a third-party finder: any failure means "not found"
            continue
        if spec is not None:
            return spec
    return None


def _distribution_version(top: str) -> str:
    from importlib import metadata

    for name in (top, top.replace("_", "-")):
        try:
            return metadata.version(name)
        except (metadata.PackageNotFoundError, ValueError, OSError):
            continue
    return ""


@lru_cache(maxsize=4)
def installed_packages(search_path: tuple[str, ...] | None = None) -> InstalledPackages:
    """One memo per process (and search path): every file and every index shares it."""
    return InstalledPackages(search_path if search_path is not None else _search_path())
