"""Implicit neural representations: DEQ INRs, their explicit twins and the baselines."""

from implicit2.models.base import INR, INROutput
from implicit2.models.zoo import GRAMMAR, ModelSpec, build_model, count_parameters, parse_model_name

__all__ = [
    "GRAMMAR",
    "INR",
    "INROutput",
    "ModelSpec",
    "build_model",
    "count_parameters",
    "parse_model_name",
]
