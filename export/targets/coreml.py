"""Core ML target (coremltools): placeholder until the converter lands."""
