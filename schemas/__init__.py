"""Pydantic documents: what mlipflow stores in the database."""

from mlipflow.schemas.base import SCHEMA_VERSION, MlipflowDocument, content_hash, dependency_versions
from mlipflow.schemas.frames import DatasetDoc, DatasetRef, FrameStatus, LabeledFrame, LabelerSpec
from mlipflow.schemas.md import AnalysisDoc, CampaignDoc, MDProtocol, MDRunDoc, MDStage, StageWindow, StructureSetDoc
from mlipflow.schemas.potentials import (
    ActiveLearningSummary,
    ALIterationDoc,
    CandidateRecord,
    CompositionErrors,
    DistilDoc,
    DistilRound,
    EosCheck,
    ErrorMetrics,
    FixedSetErrors,
    FixedTestSetComparison,
    IterationSummary,
    PotentialDoc,
    PotentialRef,
    SelectionDoc,
    StabilityResult,
    StopReason,
    TrustRatios,
    UncertaintyFraction,
    UncertaintyStats,
    ValidationDoc,
)

__all__ = [
    "SCHEMA_VERSION", "MlipflowDocument", "content_hash", "dependency_versions", "LabeledFrame",
    "LabelerSpec", "FrameStatus", "DatasetDoc", "PotentialDoc", "ErrorMetrics", "ALIterationDoc",
    "CandidateRecord", "MDProtocol", "MDStage", "StageWindow", "MDRunDoc", "StructureSetDoc", "AnalysisDoc",
    "CampaignDoc", "DatasetRef", "PotentialRef", "StopReason", "UncertaintyStats", "IterationSummary",
    "StabilityResult", "ActiveLearningSummary", "TrustRatios", "FixedSetErrors", "SelectionDoc", "FixedTestSetComparison", "DistilDoc", "DistilRound",
    "CompositionErrors", "EosCheck", "UncertaintyFraction", "ValidationDoc",
]
