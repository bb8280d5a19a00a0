"""Which of Avalanche's training strategies run as clbench strategies, and how.

Data, not code per strategy: each entry names an ``avalanche.training`` class, the model
shape it needs, and the values of Avalanche's continual-learning-baselines for
hyper-parameters that Avalanche leaves without a default or sets differently there
(only the strategy's own hyper-parameters: the baselines' learning rates and epochs are
for networks trained from scratch, not for a head on a frozen backbone). Strategies
that cannot run on a class-incremental clbench stream are listed with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BASELINES = "ContinualAI/continual-learning-baselines, experiments/"
# MAS's penalty, lambda_reg * importance * (w - w_old)^2, is stiff on a head over
# frozen features (its importance grows with the outputs' size): at finetune-head's
# lr 0.05 it diverges on experience 1, and the baselines have no MAS experiment.
MAS_LR = 0.002


@dataclass(frozen=True)
class Entry:
    name: str  # after "avalanche:"
    class_name: str
    paper: str
    module: str = "avalanche.training"  # where class_name lives (a user's own package too)
    # the head: one that grows with the classes seen, one over all the stream's classes
    # (for losses that need every output from the start), or none (StreamingLDA's own)
    model: Literal["incremental", "all-classes", "slda"] = "incremental"
    baselines: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # the baselines file the values come from
    # shared training keys (epochs, lr, ...) that differ from finetune-head's for this
    # strategy, and why (a measurement, since the baselines' are for other networks)
    training: Mapping[str, Any] = field(default_factory=dict)
    training_source: str = ""
    unavailable: str | None = None
    reference: bool = False  # not a continual method (it keeps all data): marked as such
    # what `clbench tune` searches besides the learning rate: its regularisation weight
    # (Range.around its default, a decade each way)
    search: Mapping[str, float] = field(default_factory=dict)


CATALOGUE: tuple[Entry, ...] = (
    Entry("naive", "Naive", "fine-tuning, no protection against forgetting"),
    Entry("cumulative", "Cumulative", "retrains on all data seen so far (a reference)",
          reference=True),
    Entry("ewc", "EWC", "Kirkpatrick et al., PNAS 2017", baselines={"ewc_lambda": 1.0},
          source="permuted_mnist/ewc.py", search={"ewc_lambda": 1.0}),
    Entry("lwf", "LwF", "Li and Hoiem, TPAMI 2017",
          baselines={"alpha": 1.0, "temperature": 1.0}, source="split_mnist/lwf.py",
          search={"alpha": 1.0}),
    Entry("si", "StableSynapticIntelligence", "Zenke et al., ICML 2017 (weights copied: see fixes)",
          module="clbench_avalanche.fixes",
          baselines={"si_lambda": 1.0, "eps": 0.001},
          source="split_mnist/synaptic_intelligence.py", search={"si_lambda": 1.0}),
    Entry("mas", "StableMAS", "Aljundi et al., ECCV 2018 (a zero loss accepted: see fixes)",
          module="clbench_avalanche.fixes", training={"lr": MAS_LR}, search={"lambda_reg": 1.0},
          training_source="the largest learning rate of 0.05, 0.02, 0.01, 0.005, 0.002, "
          "0.001 at which all three offline-mix seeds train without diverging (docs/avalanche.md)"),
    Entry("gem", "GEM", "Lopez-Paz and Ranzato, NeurIPS 2017",
          baselines={"patterns_per_exp": 256, "memory_strength": 0.5},
          source="split_cifar100/gem.py", search={"memory_strength": 0.5}),
    Entry("agem", "AGEM", "Chaudhry et al., ICLR 2019",
          baselines={"patterns_per_exp": 65, "sample_size": 1300},
          source="split_cifar100/agem.py"),
    Entry("replay", "Replay", "experience replay, class-balanced buffer"),
    Entry("gdumb", "GDumb", "Prabhu et al., ECCV 2020"),
    Entry("der", "DER", "Buzzega et al., NeurIPS 2020 (DER++)", model="all-classes"),
    Entry("er_ace", "StableER_ACE", "Caccia et al., ICLR 2022 (loss in log space: see fixes)",
          module="clbench_avalanche.fixes"),
    Entry("icarl", "ICaRL", "Rebuffi et al., CVPR 2017", model="all-classes",
          baselines={"memory_size": 2000, "fixed_memory": True},
          source="split_cifar100/icarl.py"),
    Entry("streaminglda", "StreamingLDA", "Hayes and Kanan, CVPR-W 2020", model="slda",
          baselines={"shrinkage_param": 1e-4, "streaming_update_sigma": True},
          source="core50/deep_slda.py"),
    Entry("joint", "JointTraining", "offline training on the whole stream",
          unavailable="trains on the whole stream at once, not experience by experience; "
          "clbench's own `joint` is the per-experience reference"),
    Entry("pnn", "PNNStrategy", "Rusu et al., 2016",
          unavailable="needs task labels at test time and its own multi-column network"),
    Entry("expertgate", "ExpertGateStrategy", "Aljundi et al., CVPR 2017",
          unavailable="task-incremental: one expert per task, selected by task label"),
    Entry("l2p", "LearningToPrompt", "Wang et al., CVPR 2022",
          unavailable="loads its own timm ViT by name with hub weights instead of the "
          "shared backbone"),
    Entry("generative_replay", "GenerativeReplay", "Shin et al., NeurIPS 2017",
          unavailable="needs a generator network trained on the images"),
    Entry("ar1", "AR1", "Lomonaco et al., 2019",
          unavailable="builds its own MobileNet and trains its lower layers"),
    Entry("packnet", "PackNet", "Mallya and Lazebnik, CVPR 2018",
          unavailable="needs a PackNet-wrapped network and task labels at test time"),
)  # fmt: skip

BY_NAME = {entry.name: entry for entry in CATALOGUE}
