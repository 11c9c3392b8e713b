"""Efficiency factors fitted against measured latency (generated; do not edit by hand).

Written by ``python tools/validate_estimates.py --write``; see docs/doctor.md for the run.
"""

CALIBRATION: dict = {
    "date": "2026-11-22",
    "cpu": "Intel(R) Xeon(R) Processor",
    "threads": 2,
    "input_size": [
        360,
        480
    ],
    "latency": "median over rounds of the p50, contention-normalised by a GEMM probe (median probe 72 GFLOP/s vs 325 idle)",
    "command": "python tools/validate_estimates.py --write",
    "entries": {
        "host/onnxruntime/fp32": {
            "efficiency": 1.0763,
            "runtime": "onnxruntime-fp32",
            "fit_models": [
                "bisenetv2",
                "deeplabv3_resnet",
                "deeplabv3_resnet50",
                "fast_scnn",
                "lraspp_mobilenetv3_small"
            ],
            "test_models": [
                "cgnet_m3n21",
                "deeplabv3_resnet18",
                "espnet_p2q8",
                "lraspp_mobilenetv3_large",
                "unet_tiny"
            ],
            "test_median_abs_error_pct": 12.8,
            "test_max_abs_error_pct": 54.0
        },
        "host/openvino/fp32": {
            "efficiency": 1.1005,
            "runtime": "openvino-f32",
            "fit_models": [
                "bisenetv2",
                "deeplabv3_resnet",
                "deeplabv3_resnet50",
                "fast_scnn",
                "lraspp_mobilenetv3_small"
            ],
            "test_models": [
                "cgnet_m3n21",
                "deeplabv3_resnet18",
                "espnet_p2q8",
                "lraspp_mobilenetv3_large",
                "unet_tiny"
            ],
            "test_median_abs_error_pct": 7.1,
            "test_max_abs_error_pct": 18.0
        },
        "host/openvino/bf16": {
            "efficiency": 0.6107,
            "runtime": "openvino-default",
            "fit_models": [
                "bisenetv2",
                "deeplabv3_resnet",
                "deeplabv3_resnet50",
                "fast_scnn",
                "lraspp_mobilenetv3_small"
            ],
            "test_models": [
                "cgnet_m3n21",
                "deeplabv3_resnet18",
                "espnet_p2q8",
                "lraspp_mobilenetv3_large",
                "unet_tiny"
            ],
            "test_median_abs_error_pct": 21.5,
            "test_max_abs_error_pct": 47.3
        }
    }
}
