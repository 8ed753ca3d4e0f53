package com.casvit.core

/** Element type of a model tensor as the metadata names it. */
enum class TensorType(val jsonName: String, val bytesPerElement: Int) {
    FLOAT32("float32", 4),
    INT8("int8", 1),
    UINT8("uint8", 1);

    /** Inclusive range of the quantized integer type (unused for [FLOAT32]). */
    val quantizedRange: IntRange
        get() = if (this == INT8) -128..127 else 0..255

    companion object {
        fun fromJson(name: String): TensorType =
            entries.firstOrNull { it.jsonName == name }
                ?: throw ModelInfoException("unsupported dtype '$name' (expected float32, int8 or uint8)")
    }
}

/** Affine quantization of a tensor: real = (q - zeroPoint) * scale. */
data class Quantization(val scale: Float, val zeroPoint: Int)

/** What the model's image input expects (the "input" object of the metadata). */
class InputSpec(
    val name: String,
    val height: Int,
    val width: Int,
    val dtype: TensorType,
    val normalizationEmbedded: Boolean,
    val valueRangeMax: Float,
    val mean: FloatArray,
    val std: FloatArray,
    val quantization: Quantization?,
    val resize: ResizeSpec,
) {
    /** How RGB bytes become the float values the model was exported for. */
    val scaling: InputScaling
        get() = when {
            !normalizationEmbedded -> InputScaling.NORMALIZED
            valueRangeMax == 255f -> InputScaling.BYTE
            else -> InputScaling.UNIT
        }

    /** Bytes of one NHWC input tensor (batch 1). */
    val byteSize: Int get() = height * width * 3 * dtype.bytesPerElement
}

/** The float values fed to the model: mean/std-normalized, RGB/255, or raw RGB bytes as floats. */
enum class InputScaling { NORMALIZED, UNIT, BYTE }

/** What the model's output holds per class: softmax probabilities, or raw logits. */
enum class Scores(val jsonName: String) {
    PROBABILITIES("probabilities"), LOGITS("logits");

    companion object {
        fun fromJson(name: String): Scores =
            values().firstOrNull { it.jsonName == name } ?: throw ModelInfoException("unknown output scores '$name'")
    }
}

/** The model's output (the "output" object of the metadata): one score per class. */
class OutputSpec(
    val name: String,
    val dtype: TensorType,
    val numClasses: Int,
    val quantization: Quantization?,
    val scores: Scores = Scores.PROBABILITIES,
) {
    /** Bytes of one output tensor (batch 1). */
    val byteSize: Int get() = numClasses * dtype.bytesPerElement
}

/** The model JSON written by the exporter next to every .tflite (schema "casvit-model/3"). */
class ModelInfo(
    val modelFile: String,
    val labelsFile: String,
    val variant: String,
    val precision: String,
    val numClasses: Int,
    val weightsSource: String,
    val forDeployment: Boolean,
    val input: InputSpec,
    val output: OutputSpec,
) {
    companion object {
        const val SCHEMA = "casvit-model/3"

        /** Parses and validates the metadata; throws [ModelInfoException] with the reason. */
        fun parse(jsonText: String): ModelInfo {
            val root = try {
                Json.parse(jsonText)
            } catch (e: JsonException) {
                throw ModelInfoException("model JSON is not valid JSON: ${e.message}")
            }
            val top = root as? Map<*, *> ?: throw ModelInfoException("model JSON must be an object")
            val schema = top.string("schema")
            if (schema != SCHEMA) throw ModelInfoException("unsupported schema '$schema' (expected '$SCHEMA')")
            val numClasses = top.int("num_classes")
            val input = parseInput(top.obj("input"), top.obj("preprocessing"))
            val output = parseOutput(top.obj("output"))
            if (output.numClasses != numClasses) {
                throw ModelInfoException("output shape has ${output.numClasses} classes but num_classes is $numClasses")
            }
            return ModelInfo(
                modelFile = top.string("model_file"),
                labelsFile = top.string("labels_file"),
                variant = top.string("variant"),
                precision = top.string("precision"),
                numClasses = numClasses,
                weightsSource = top.string("weights_source"),
                forDeployment = top.bool("for_deployment"),
                input = input,
                output = output,
            )
        }

        /** The record's resize and crop ("preprocessing"); its size must be the input's. */
        private fun parseResize(p: Map<*, *>, height: Int, width: Int): ResizeSpec {
            if (p.int("height") != height || p.int("width") != width) {
                throw ModelInfoException("preprocessing size ${p.int("height")}x${p.int("width")} is not the input size ${height}x$width")
            }
            return ResizeSpec(p.double("crop_pct"), CropMode.fromJson(p.string("crop_mode")), ResampleFilter.fromJson(p.string("interpolation")))
        }

        private fun parseInput(o: Map<*, *>, preprocessing: Map<*, *>): InputSpec {
            if (o.string("layout") != "NHWC") throw ModelInfoException("input layout must be NHWC")
            if (o.int("channels") != 3) throw ModelInfoException("input must have 3 channels")
            if (o.string("color_order") != "RGB") throw ModelInfoException("input color_order must be RGB")
            val height = o.int("height")
            val width = o.int("width")
            if (height <= 0 || width <= 0) throw ModelInfoException("input size must be positive")
            val range = o.floats("value_range", 2)
            if (range[0] != 0f || (range[1] != 1f && range[1] != 255f)) {
                throw ModelInfoException("input value_range must be [0, 1] or [0, 255]")
            }
            val embedded = o.bool("normalization_embedded")
            if (!embedded && range[1] != 1f) throw ModelInfoException("mean/std normalization needs value_range [0, 1]")
            val std = o.floats("std", 3)
            if (std.any { it == 0f }) throw ModelInfoException("input std must be non-zero")
            val dtype = TensorType.fromJson(o.string("dtype"))
            return InputSpec(
                name = o.string("name"), height = height, width = width, dtype = dtype,
                normalizationEmbedded = embedded, valueRangeMax = range[1],
                mean = o.floats("mean", 3), std = std,
                quantization = parseQuantization(o, dtype, "input"),
                resize = parseResize(preprocessing, height, width),
            )
        }

        private fun parseOutput(o: Map<*, *>): OutputSpec {
            val shape = o.list("shape").map { (it as? Double)?.toInt() ?: throw ModelInfoException("bad output shape") }
            if (shape.size != 2 || shape[0] != 1) throw ModelInfoException("output shape must be [1, num_classes]")
            val dtype = TensorType.fromJson(o.string("dtype"))
            return OutputSpec(o.string("name"), dtype, shape[1], parseQuantization(o, dtype, "output"), Scores.fromJson(o.string("scores")))
        }

        private fun parseQuantization(o: Map<*, *>, dtype: TensorType, what: String): Quantization? {
            val q = o["quantization"]
            if (dtype == TensorType.FLOAT32) return null
            if (q !is Map<*, *>) throw ModelInfoException("$what dtype ${dtype.jsonName} needs quantization {scale, zero_point}")
            val scale = q.double("scale").toFloat()
            if (!(scale > 0f)) throw ModelInfoException("$what quantization scale must be positive")
            return Quantization(scale, q.int("zero_point"))
        }

        private fun Map<*, *>.field(key: String): Any? =
            if (containsKey(key)) get(key) else throw ModelInfoException("model JSON misses \"$key\"")

        private fun Map<*, *>.string(key: String) =
            field(key) as? String ?: throw ModelInfoException("\"$key\" must be a string")

        private fun Map<*, *>.bool(key: String) =
            field(key) as? Boolean ?: throw ModelInfoException("\"$key\" must be true or false")

        private fun Map<*, *>.double(key: String) =
            field(key) as? Double ?: throw ModelInfoException("\"$key\" must be a number")

        private fun Map<*, *>.int(key: String): Int {
            val d = double(key)
            if (d != Math.rint(d) || d < Int.MIN_VALUE || d > Int.MAX_VALUE) throw ModelInfoException("\"$key\" must be an integer")
            return d.toInt()
        }

        private fun Map<*, *>.obj(key: String) =
            field(key) as? Map<*, *> ?: throw ModelInfoException("\"$key\" must be an object")

        private fun Map<*, *>.list(key: String) =
            field(key) as? List<*> ?: throw ModelInfoException("\"$key\" must be an array")

        /** float32 values exactly as numpy's np.asarray(values, np.float32) rounds them. */
        private fun Map<*, *>.floats(key: String, size: Int): FloatArray {
            val values = list(key)
            if (values.size != size) throw ModelInfoException("\"$key\" must have $size numbers")
            return FloatArray(size) { (values[it] as? Double ?: throw ModelInfoException("\"$key\" must hold numbers")).toFloat() }
        }
    }
}

/** Labels file: one class name per line; blank lines (e.g. a trailing newline) are ignored. */
fun parseLabels(text: String, expectedCount: Int): List<String> {
    val labels = text.lineSequence().map { it.trim() }.filter { it.isNotEmpty() }.toList()
    if (labels.size != expectedCount) {
        throw ModelInfoException("labels file has ${labels.size} names but the model has $expectedCount classes")
    }
    return labels
}

/** Metadata or labels that the app cannot use, with the reason for the user. */
class ModelInfoException(message: String) : IllegalArgumentException(message)
