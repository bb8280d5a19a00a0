"""Every source kind a stream spec may name, by name."""

from __future__ import annotations

from collections.abc import Callable

from cl_bench.datasources import PACKAGED_SOURCES, DataContext, SourceData
from cl_bench.ondisk_sources import cifar100, image_folder
from cl_bench.stream_spec import SourceEntry

SOURCES: dict[str, Callable[[SourceEntry, DataContext], SourceData]] = {
    **PACKAGED_SOURCES,
    "cifar100": cifar100,
    "image-folder": image_folder,
}
