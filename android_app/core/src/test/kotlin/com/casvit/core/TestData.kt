package com.casvit.core

/** Shared fixtures: the exporter's model JSON (as written for an fp32 224x224 model). */
object TestData {
    /** The exporter's metadata with [input] and [output] fragments overridable. */
    fun modelJson(
        inputExtra: String = """"dtype": "float32", "normalization_embedded": false, "value_range": [0.0, 1.0], "quantization": null""",
        outputExtra: String = """"dtype": "float32", "shape": [1, 1000], "quantization": null""",
        scores: String = "probabilities",
    ) = """
        {
          "schema": "casvit-model/3",
          "model_file": "model.tflite",
          "labels_file": "labels.txt",
          "variant": "xs", "precision": "fp32", "num_classes": 1000,
          "weights_source": "random (seed 0)", "for_deployment": false,
          "input": {"name": "image", "layout": "NHWC", "height": 224, "width": 224, "channels": 3, "color_order": "RGB",
                    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], $inputExtra},
          "preprocessing": {"schema": "casvit-preprocessing/1", "height": 224, "width": 224, "crop_pct": 0.875,
                            "crop_mode": "center", "interpolation": "bicubic",
                            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
          "output": {"name": "probabilities", $outputExtra, "scores": "$scores",
                     "meaning": "probabilities (softmax of the logits, summing to 1)"}
        }
    """.trimIndent()

    fun argb(r: Int, g: Int, b: Int) = (0xFF shl 24) or (r shl 16) or (g shl 8) or b

    /** An image from a list of [r, g, b] triples. */
    fun image(width: Int, height: Int, rgb: List<List<Int>>) =
        ArgbImage(width, height, IntArray(width * height) { argb(rgb[it][0], rgb[it][1], rgb[it][2]) })

    fun rgbOf(image: ArgbImage): List<List<Int>> =
        image.pixels.map { listOf((it shr 16) and 0xFF, (it shr 8) and 0xFF, it and 0xFF) }
}
