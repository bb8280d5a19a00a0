"""Frozen pretrained backbones: the model, its preprocessing, and where its weights came from."""

from cl_bench.models.backbones.base import Backbone, BackboneOptions, BackboneSpec

__all__ = ["Backbone", "BackboneOptions", "BackboneSpec"]
