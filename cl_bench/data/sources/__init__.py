"""Image sources: every source kind a stream spec may name, by name.

``packaged`` reads data that ships inside installable packages (the offline default),
``user_provided`` the data sets users obtain themselves (CIFAR-100, image folders).
"""

from __future__ import annotations

from collections.abc import Callable

from cl_bench.data.sources.base import DataContext, SourceData
from cl_bench.data.sources.packaged import PACKAGED_SOURCES
from cl_bench.data.sources.user_provided import cifar100, image_folder
from cl_bench.data.spec import SourceEntry

SOURCES: dict[str, Callable[[SourceEntry, DataContext], SourceData]] = {
    **PACKAGED_SOURCES,
    "cifar100": cifar100,
    "image-folder": image_folder,
}
