"""SEMA as a clbench strategy, on the shared adapter backend (ViTs and CNNs alike).

Faithful to the paper and its official code (SEMA-CL), with these differences, each a
defect of the code rather than the method:
- inputs are normalised with the backbone's own statistics (the code feeds [0, 1]
  pixels to a ViT trained on mean = std = 0.5);
- the z-score divides by std + 1e-8 (the code has no epsilon);
- each descriptor standardises its input (the layer summary) with the mean and std of
  its own training data: on CNN feature maps, unnormalised summaries are large enough
  that SGD at the code's descriptor learning rate (0.01, momentum 0.9) diverges to NaN,
  which silently disables detection in that layer. The criterion is unchanged: errors
  are still compared with the descriptor's own buffer of errors.
Kept as the code does it, because the published numbers come from it: adapters are
applied with scale 1 and no dropout (0.1 is configured there but never used); after an
expansion the detection pass continues with the next batch and a new pass starts when
a pass has expanded (at most once per layer per task); the head is one linear layer
over all classes, old-class logits masked with -inf while training.

``--set classifier_alignment=true`` adds what MOS does after each task (the shared
``cl_bench.align_classifier``): the mean and covariance of each new class's features
under the model of its task are stored, and from the second task on the head is
retrained on features drawn from every seen class's Gaussian (MOS's alignment
settings: 30 epochs, lr 0.005, 5 x batch_size draws per class). Not part of SEMA as
published; recorded as its own variant. It answers the bias of the masked head that
benchmarks/diagnose_sema.py measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cl_bench import (
    Adapter,
    AdapterConfig,
    AdapterSet,
    ClassGaussians,
    Experience,
    FixedComputation,
    RandomResizedCropFlip,
    Strategy,
    align_classifier,
    require,
    training_inputs,
)
from clbench_sema.modules import SemaLayer


@dataclass(frozen=True)
class SemaConfig:
    """Defaults of the official CIFAR-100 config (sema_cifar.json)."""

    func_epochs: int = 5  # 20 for ImageNet-R/A and VTAB
    rd_epochs: int = 20
    lr: float = 0.005
    rd_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    detect_batch_size: int = 128
    threshold: float = 2.0  # 1 for ImageNet-A and VTAB
    expandable_blocks: int = 3  # the last three blocks
    bottleneck: int = 16
    adapter_scale: float = 1.0
    rd_hidden: int = 128
    buffer_size: int = 500
    classifier_alignment: bool = False  # not in SEMA: MOS's alignment of the head
    alignment_epochs: int = 30
    alignment_lr: float = 0.005
    alignment_samples_per_class: int = 160  # 5 x batch_size, as MOS's code draws
    covariance_eps: float = 1e-4
    augment: bool = False  # SEMA-CL's RandomResizedCrop + flip on the training images

    def __post_init__(self) -> None:
        for key in ("func_epochs", "rd_epochs", "batch_size", "detect_batch_size",
                    "expandable_blocks", "bottleneck", "rd_hidden", "buffer_size"):  # fmt: skip
            require(getattr(self, key) >= 1, key, "must be at least 1")
        for key in ("lr", "rd_lr", "threshold", "alignment_lr", "covariance_eps"):
            require(getattr(self, key) > 0, key, "must be positive")
        require(self.alignment_epochs >= 0, "alignment_epochs", "must be non-negative")
        require(self.alignment_samples_per_class >= 1, "alignment_samples_per_class",
                "must be at least 1")  # fmt: skip
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", "must be non-negative")


class Sema(Strategy):
    Config = SemaConfig
    augmentation = RandomResizedCropFlip()  # SEMA-CL utils/data.py build_transform

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        config, view = self.config, self.backbone.view
        require(config.expandable_blocks <= len(view), "expandable_blocks",
                f"the backbone has only {len(view)} blocks")  # fmt: skip
        adapter = AdapterConfig(bottleneck=config.bottleneck, scale=config.adapter_scale)
        self.first_expandable_ = len(view) - config.expandable_blocks
        self.adapters_ = AdapterSet()
        for block in range(len(view)):
            if block < self.first_expandable_:
                module: nn.Module = Adapter(view.places[block], view.kind, adapter)
            else:
                module = SemaLayer(view, block, adapter, config.rd_hidden, config.buffer_size)
            self.adapters_.attach(block, module)
        self.adapters_.to(self.backbone.device)
        self.head_ = nn.Linear(self.backbone.num_features, self.stream.num_classes).to(
            self.backbone.device
        )
        nn.init.zeros_(self.head_.bias)
        self.seen_ = 0
        self.expansions_: list[dict[str, Any]] = []
        self.layout_: list[list[int]] = []
        self.gaussians_ = ClassGaussians(config.covariance_eps)
        self._tail_inputs: FixedComputation | None = None  # set once the first task is learned
        self._freeze_all()

    # --- the contract ---------------------------------------------------------------
    def train(self, experience: Experience) -> None:
        known, self.seen_ = self.seen_, max(experience.classes) + 1
        if experience.index == 0:
            self._first_experience(experience)
        elif not self._detect_and_expand(experience, known):
            self._classify(experience, [self.head_], known, "head only",
                           first_trained=len(self.backbone.view))  # fmt: skip
        self._freeze_all()
        self.layout_.append([len(layer.adapters) for layer in self._layers()])
        if self.config.classifier_alignment:
            self._align(experience)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.predict_and_embed(images)[0]

    @torch.no_grad()
    def predict_and_embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.embed(images)
        return self.head_(features)[:, : self.seen_].argmax(1), features

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.adapters_.eval()
        if self._tail_inputs is None:
            return self.backbone.forward(images, self.adapters_)
        return self.backbone.forward_from(self._tail_inputs(images), self.first_expandable_,
                                          self.adapters_)  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.layout_:  # the first task is learned: its prefix is frozen for good
            self._tail_inputs = self.backbone.fixed(self._prefix_output)

    def report(self) -> dict[str, Any]:
        names = [self.backbone.view.names[layer.block] for layer in self._layers()]
        return {"expandable_blocks": names, "adapters_per_layer_after_experience": self.layout_,
                "expansions": self.expansions_}  # fmt: skip

    # --- phases ---------------------------------------------------------------------
    def _first_experience(self, experience: Experience) -> None:
        """One adapter in every block; all of them, the routers and the head are trained."""
        for layer in self._layers():
            layer.expand(experience.index)
        self.adapters_.to(self.backbone.device)
        trained = [self.adapters_, self.head_]
        self._classify(experience, trained, 0, "adapters", first_trained=0)
        # The blocks before the expandable ones never train again: their output, the
        # tail's input, is computed once per image for every later epoch and evaluation.
        self._tail_inputs = self.backbone.fixed(self._prefix_output)
        for layer in self._layers():
            self._describe(layer, layer.descriptors[-1], experience.images)

    def _detect_and_expand(self, experience: Experience, known: int) -> bool:
        """SEMA's detection passes over the task's data, expanding where it is novel (on
        training images as the recipe sees them: augmented if it augments, as SEMA-CL's
        detection loader is)."""
        expanded: set[int] = set()
        tail = self.training_inputs(experience.images, self._tail_input)
        while len(expanded) < len(self._layers()):
            added = False
            order = torch.randperm(len(experience), generator=self.runtime.generator)
            for index in order.split(self.config.detect_batch_size):
                block = self._first_novel_layer(tail(index), expanded)
                if block is None:
                    continue
                layer = self.adapters_.at(block)
                adapter, descriptor, column = layer.expand(experience.index)
                self.adapters_.to(self.backbone.device)
                self._classify(experience, [adapter, column, self.head_], known,
                               f"expansion at {self.backbone.view.names[block]}",
                               first_trained=block)  # fmt: skip
                self._describe(layer, descriptor, experience.images)
                expanded.add(block)
                added = True
                self.expansions_.append({"experience": experience.index,
                                         "block": self.backbone.view.names[block]})  # fmt: skip
                self.runtime.log("sema/expansions", len(self.expansions_), experience.index)
            if not added:
                break
        return bool(expanded)

    @torch.no_grad()
    def _first_novel_layer(self, x: torch.Tensor, expanded: set[int]) -> int | None:
        """Scan the expandable layers shallow to deep; the first novel one wins this batch."""
        self.adapters_.eval()
        for layer in self._layers():
            if layer.block not in expanded and layer.novelty(x) > self.config.threshold:
                return layer.block
            x = self.backbone.view.run_block(layer.block, x, layer)
        return None

    def _classify(self, experience: Experience, modules: list[nn.Module], known: int,
                  what: str, *, first_trained: int) -> None:  # fmt: skip
        """Cross-entropy on the current classes (older logits masked) for ``func_epochs``.

        The blocks before ``first_trained`` (the first block whose modules train; the
        number of blocks when only the head trains) are frozen for the whole training:
        without augmentation their output is computed once rather than in every epoch.
        """
        inputs = self.training_inputs(experience.images,
                                      lambda x: self._input_of(x, first_trained))  # fmt: skip
        labels = experience.labels.to(self.backbone.device)
        config = self.config
        params = self._trainable(modules)
        optimiser = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)  # fmt: skip
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.func_epochs)
        self.adapters_.train()
        for _ in self.runtime.track(range(config.func_epochs), total=config.func_epochs,
                                    description=f"SEMA {what}"):  # fmt: skip
            order = torch.randperm(len(labels), generator=self.runtime.generator)
            for index in order.split(config.batch_size):
                features = self.backbone.forward_from(inputs(index), first_trained,
                                                      self.adapters_)  # fmt: skip
                logits = self.head_(features)[:, : self.seen_]
                if known:
                    logits = logits.masked_fill(
                        torch.arange(self.seen_, device=logits.device) < known, float("-inf")
                    )
                loss = F.cross_entropy(logits, labels[index.to(labels.device)])
                self.runtime.log("sema/functional_loss", loss.detach())
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            schedule.step()
        self._freeze_all()

    def _describe(self, layer: SemaLayer, descriptor: nn.Module, images: torch.Tensor) -> None:
        """Train a descriptor on the layer's summaries; its buffer keeps the last errors.

        Its input standardisation is fitted on the task's unaugmented images; with
        augmentation it trains on augmented ones, as SEMA-CL's train loader gives them."""
        config = self.config

        def summarise(x: torch.Tensor) -> torch.Tensor:
            return self._summaries(self._tail_input(x), layer.block)

        summaries = summarise(images)
        descriptor.fit_scale(summaries)
        if self.train_transform is None:  # the summaries above are every epoch's input
            batch_summaries = training_inputs(summaries, lambda rows: rows, None)
        else:
            batch_summaries = self.training_inputs(images, summarise)
        params = self._trainable([descriptor])
        optimiser = torch.optim.SGD(params, lr=config.rd_lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)  # fmt: skip
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.rd_epochs)
        for _ in range(config.rd_epochs):
            order = torch.randperm(len(summaries), generator=self.runtime.generator)
            for index in order.split(config.batch_size):
                errors = descriptor.errors(batch_summaries(index))
                descriptor.losses.extend(errors.detach().cpu().tolist())
                self.runtime.log("sema/descriptor_loss", errors.detach().mean())
                optimiser.zero_grad(set_to_none=True)
                errors.mean().backward()
                optimiser.step()
            schedule.step()
        self._freeze_all()

    def _align(self, experience: Experience) -> None:
        """Store the new classes' Gaussians; from the second task on, realign the head."""
        features = self.backbone.batched(self.embed, experience.images)
        labels = experience.labels.to(features.device)
        for label in experience.classes:
            self.gaussians_.add(features[labels == label])
        if experience.index == 0:
            return
        config = self.config
        align_classifier(self.head_, self.gaussians_, epochs=config.alignment_epochs,
                         lr=config.alignment_lr, momentum=config.momentum,
                         weight_decay=config.weight_decay,
                         samples_per_class=config.alignment_samples_per_class,
                         batch_size=config.alignment_samples_per_class,
                         generator=self.runtime.generator,
                         log=partial(self.runtime.log, "sema/alignment_loss"))  # fmt: skip

    # --- helpers --------------------------------------------------------------------
    def _layers(self) -> list[SemaLayer]:
        return [
            self.adapters_.at(b) for b in range(self.first_expandable_, len(self.backbone.view))
        ]

    @torch.no_grad()
    def _prefix_output(self, images: torch.Tensor) -> torch.Tensor:
        """Input of the first expandable block: the stem and the first task's adapters."""
        self.adapters_.eval()
        return self.backbone.forward(images, self.adapters_, stop=self.first_expandable_)

    def _tail_input(self, images: torch.Tensor) -> torch.Tensor:
        assert self._tail_inputs is not None, "the first task is learned first"
        return self._tail_inputs(images)

    @torch.no_grad()
    def _input_of(self, images: torch.Tensor, block: int) -> torch.Tensor:
        """The input of ``block`` under the frozen modules before it: the stem's output
        for block 0 (the first task trains every block), otherwise the tail's input
        (memoised) run through the frozen expandable blocks before ``block``."""
        if block == 0:
            return self.backbone.block_input(images, 0)
        tail = self._tail_input(images)
        if block == self.first_expandable_:
            return tail
        self.adapters_.eval()
        start = self.first_expandable_
        return self.backbone.batched(
            lambda chunk: self.backbone.forward_from(chunk, start, self.adapters_, stop=block),
            tail,
        )

    @torch.no_grad()
    def _summaries(self, tail: torch.Tensor, block: int) -> torch.Tensor:
        """A descriptor's inputs: the summaries of what the block's adapters read (after
        attention in a ViT, as SEMA-CL's descriptors and routers read it)."""
        self.adapters_.eval()
        x = self.backbone.forward_from(tail, self.first_expandable_, self.adapters_, stop=block)
        view = self.backbone.view
        return view.summary(view.adapter_input(block, x))

    def _trainable(self, modules: list[nn.Module]) -> list[nn.Parameter]:
        self._freeze_all()
        params = [p for module in modules for p in module.parameters()]
        for parameter in params:
            parameter.requires_grad_(True)
        return params

    def _freeze_all(self) -> None:
        for parameter in [*self.adapters_.parameters(), *self.head_.parameters()]:
            parameter.requires_grad_(False)
