"""Implicit neural representations: DEQ INRs, their explicit twins and the baselines."""

from implicit2.models.base import INR, INROutput
from implicit2.models.zoo import build_model, count_parameters
from implicit2.names import MODEL_GRAMMAR as GRAMMAR
from implicit2.names import ModelSpec, parse_model_name

__all__ = [
    "GRAMMAR",
    "INR",
    "INROutput",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "parse_model_name",
]
