"""Lists of backends in help texts, errors and doctor checks come from the backends' own declarations."""
from __future__ import annotations

import argparse

from edgekd.backends.base import Backend
from edgekd.backends.registry import backends_where, get_backend, list_backends


def test_every_declared_doctor_check_is_one_the_doctor_runs() -> None:
    from edgekd.doctor import BACKEND_CHECKS

    for name in list_backends():
        unknown = set(get_backend(name).doctor_checks) - set(BACKEND_CHECKS)
        assert not unknown, f"{name} declares doctor checks the doctor does not implement: {unknown}"


def test_backends_where_keeps_registry_order() -> None:
    assert backends_where(lambda b: True) == list_backends()
    assert backends_where(Backend.fuses_pre_post) == ["onnxruntime", "openvino", "coreml", "tensorrt"]
    assert "torch" not in backends_where(Backend.fuses_pre_post)


def test_export_help_lists_every_registered_backend() -> None:
    from edgekd.cli import export

    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    text = parser.format_help().replace("\n", " ")
    backend_help = next(a.help for a in parser._actions if "--backend" in a.option_strings)
    assert all(name in backend_help for name in list_backends()) and all(name in export.HELP for name in list_backends())
    assert "INT8 (onnxruntime, openvino)" in text  # the backends whose export options include max_accuracy_drop


def test_openvino_profile_check_runs_for_the_backend_that_declares_it() -> None:
    from edgekd.doctor import _profile_checks
    from edgekd.profiles import load_profile

    profile = load_profile("intel-x86-cpu")  # OpenVINO over ssh, no precision hint: the default-precision note
    assert [f.code for f in _profile_checks(profile, None)] == ["openvino-default-precision"]
    assert [f.code for f in _profile_checks(profile, "openvino")] == ["openvino-default-precision"]
    assert _profile_checks(profile, "onnxruntime") == []


def test_doctor_dynamic_shape_finding_says_what_the_backend_declares() -> None:
    from test_doctor_graph import conv_model

    from edgekd.doctor import graph

    spatial = conv_model(input_shape=("N", 3, "H", "W"))
    (ov,) = graph.check_dynamic(spatial, "openvino", "x86")
    assert ov.severity == "warning" and ov.why_it_matters == get_backend("openvino").dynamic_shape_cost
    assert "generic kernels" in ov.why_it_matters
    (lite,) = graph.check_dynamic(spatial, "litert", "phone")  # declares nothing: the generic reason, an info
    assert lite.severity == "info" and lite.why_it_matters == Backend.dynamic_shape_cost
    assert backends_where(lambda b: b.runs_custom_onnx_domains) == ["onnxruntime"]
