"""Implicit neural representations: DEQ INRs, their explicit twins and the baselines."""

from implicit2.model_names import MODEL_GRAMMAR as GRAMMAR
from implicit2.model_names import ModelSpec, parse_model_name
from implicit2.models.base import INR, INROutput
from implicit2.models.zoo import build_model, count_parameters

__all__ = [
    "GRAMMAR",
    "INR",
    "INROutput",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "parse_model_name",
]
