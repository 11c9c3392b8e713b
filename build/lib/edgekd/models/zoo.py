"""Imports every architecture family so their builders register themselves."""
from edgekd.models import (  # noqa: F401  (imported for registration)
    bisenetv2,
    cgnet,
    deeplabv3,
    espnet,
    fast_scnn,
    lraspp,
    unet,
)
