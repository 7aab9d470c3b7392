"""The causal feature pipeline: indicators, volume, returns, patterns, time, microstructure,
cross-asset and external features as polars expressions; normalisation; incremental updates;
feature selection.  See docs/features.md."""

from features.pipeline.base import BuildContext, Feature, FrameFeature, Output, Recursion, Scale
from features.pipeline.config import FeatureConfig
from features.pipeline.external import ExternalSource, FileSource, FrameSource
from features.pipeline.incremental import IncrementalFeatures
from features.pipeline.normalise import FittedScaler
from features.pipeline.pipeline import WARM, FeaturePipeline, frames_to_panel
from features.pipeline.selection import FeatureSelection, FeatureSelector, SelectionConfig, train_split

__all__ = [
    "WARM",
    "BuildContext",
    "ExternalSource",
    "Feature",
    "FeatureConfig",
    "FeaturePipeline",
    "FeatureSelection",
    "FeatureSelector",
    "FileSource",
    "FittedScaler",
    "FrameFeature",
    "FrameSource",
    "IncrementalFeatures",
    "Output",
    "Recursion",
    "Scale",
    "SelectionConfig",
    "frames_to_panel",
    "train_split",
]
