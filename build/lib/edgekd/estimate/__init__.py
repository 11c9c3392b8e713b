"""Latency estimates for devices not at hand: ONNX per-node cost + a roofline per precision.

Estimates are labelled ``kind="estimate"`` and never written to ``bench_results/`` (which holds
measurements only). See docs/doctor.md for the method, its basis and its measured error.
"""
from edgekd.estimate.onnx_cost import GraphCost, NodeCost, graph_cost
from edgekd.estimate.roofline import Estimate, LayerEstimate, estimate_cost, estimate_latency

__all__ = ["Estimate", "GraphCost", "LayerEstimate", "NodeCost", "estimate_cost", "estimate_latency", "graph_cost"]
