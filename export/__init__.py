"""CAS-ViT export toolchain. Importing the package switches library telemetry off
(before any converter or runtime is loaded), see ``export.offline``."""

from .offline import disable_telemetry

disable_telemetry()
