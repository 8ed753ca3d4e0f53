package com.casvit.core

import java.nio.ByteBuffer
import kotlin.math.round

/**
 * The preprocessing record of casvit/preprocess.py, for one model input:
 * Pillow-exact resize (bicubic or bilinear, [ResizeSpec]) -> center crop (or none when
 * squashing) -> NHWC floats ([InputScaling], per-channel mean/std) -> the tensor's dtype
 * (float32, or int8/uint8 quantized).
 */
class Preprocessor(private val spec: InputSpec) {

    /** Resizes and center-crops [image] to the model's input size as the record says (RGB bytes still). */
    fun resize(image: ArgbImage): ArgbImage {
        val resize = spec.resize
        val (width, height) = resize.scaledSize(image.width, image.height, spec.width, spec.height)
        val scaled = image.resize(width, height, resize.filter)
        if (resize.cropMode == CropMode.SQUASH) return scaled
        return scaled.crop(ResizeSpec.centerBox(width, height, spec.width, spec.height))
    }

    /** The float32 NHWC tensor (batch 1) the model sees for [image], before any quantization. */
    fun toFloatTensor(image: ArgbImage): FloatArray = scale(resize(image))

    /** NHWC floats from an image already at the input size, with the same float32 math as numpy. */
    fun scale(resized: ArgbImage): FloatArray {
        require(resized.width == spec.width && resized.height == spec.height) { "image is not at the input size" }
        val out = FloatArray(resized.pixels.size * 3)
        val scaling = spec.scaling
        for ((i, p) in resized.pixels.withIndex()) {
            for (c in 0 until 3) {
                val byte = (p shr (16 - 8 * c)) and 0xFF
                out[i * 3 + c] = when (scaling) {
                    InputScaling.BYTE -> byte.toFloat()
                    InputScaling.UNIT -> byte.toFloat() / 255f
                    InputScaling.NORMALIZED -> (byte.toFloat() / 255f - spec.mean[c]) / spec.std[c]
                }
            }
        }
        return out
    }

    /**
     * Writes [tensor] into [buffer] (native byte order expected) in the input's dtype:
     * float32 as is; int8/uint8 quantized with [quantize].
     */
    fun write(tensor: FloatArray, buffer: ByteBuffer) {
        require(tensor.size * spec.dtype.bytesPerElement == spec.byteSize) { "tensor has ${tensor.size} values" }
        require(buffer.remaining() >= spec.byteSize) { "buffer too small: ${buffer.remaining()} < ${spec.byteSize}" }
        val q = spec.quantization
        if (spec.dtype == TensorType.FLOAT32) {
            for (x in tensor) buffer.putFloat(x)
            return
        }
        requireNotNull(q) { "quantized input without quantization parameters" }
        for (x in tensor) buffer.put(quantize(x, q, spec.dtype).toByte())
    }

    /** Fills [buffer] (from its position) with the model input for [image]. */
    fun fill(image: ArgbImage, buffer: ByteBuffer) = write(toFloatTensor(image), buffer)

    companion object {
        /**
         * q = clamp(round(x / scale + zeroPoint)) to the integer range of [type], in float32 with
         * round half to even: the same arithmetic as the exporter's numpy quantize (export/targets/tflite.py).
         */
        fun quantize(x: Float, q: Quantization, type: TensorType): Int {
            val range = type.quantizedRange
            val value = round(x / q.scale + q.zeroPoint.toFloat())
            return value.coerceIn(range.first.toFloat(), range.last.toFloat()).toInt()
        }
    }
}
