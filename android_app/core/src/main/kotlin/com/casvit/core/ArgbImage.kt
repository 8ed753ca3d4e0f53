package com.casvit.core

import kotlin.math.ceil

/**
 * An image as Android's `Bitmap.getPixels` returns it: row-major `0xAARRGGBB` ints.
 * Alpha is ignored everywhere (the reference path converts to RGB).
 */
class ArgbImage(val width: Int, val height: Int, val pixels: IntArray) {
    init {
        require(width > 0 && height > 0) { "image size must be positive, got ${width}x$height" }
        require(pixels.size == width * height) { "expected ${width * height} pixels, got ${pixels.size}" }
    }

    /** A copy of the pixels inside [box]. */
    fun crop(box: CropBox): ArgbImage {
        require(box.left >= 0 && box.top >= 0 && box.right <= width && box.bottom <= height && box.width > 0 && box.height > 0) {
            "crop box $box outside a ${width}x$height image"
        }
        val out = IntArray(box.width * box.height)
        for (y in 0 until box.height) {
            System.arraycopy(pixels, (box.top + y) * width + box.left, out, y * box.width, box.width)
        }
        return ArgbImage(box.width, box.height, out)
    }

    /**
     * Upright copy of a frame or photo: mirrored left-right first when [mirror] (EXIF flips),
     * then rotated clockwise by [degrees] (0, 90, 180 or 270; CameraX rotationDegrees, EXIF rotation).
     */
    fun oriented(degrees: Int, mirror: Boolean = false): ArgbImage {
        require(degrees in setOf(0, 90, 180, 270)) { "rotation must be 0, 90, 180 or 270 degrees, got $degrees" }
        val swap = degrees == 90 || degrees == 270
        val outW = if (swap) height else width
        val out = IntArray(pixels.size)
        for (y in 0 until height) {
            for (x0 in 0 until width) {
                val x = if (mirror) width - 1 - x0 else x0
                val target = when (degrees) {
                    90 -> x * outW + (height - 1 - y)
                    180 -> (height - 1 - y) * outW + (width - 1 - x)
                    270 -> (width - 1 - x) * outW + y
                    else -> y * outW + x
                }
                out[target] = pixels[y * width + x0]
            }
        }
        return ArgbImage(outW, if (swap) width else height, out)
    }

    /** Resized to [outWidth] x [outHeight] with Pillow's [filter], bit-exact (see [PillowResample]). */
    fun resize(outWidth: Int, outHeight: Int, filter: ResampleFilter): ArgbImage =
        PillowResample.resize(this, outWidth, outHeight, filter)
}

/** A pixel rectangle [left, right) x [top, bottom), as Pillow's crop box. */
data class CropBox(val left: Int, val top: Int, val right: Int, val bottom: Int) {
    val width: Int get() = right - left
    val height: Int get() = bottom - top
}

/** Pillow's resampling filters the record can name: support radius and kernel (Resample.c). */
enum class ResampleFilter(val jsonName: String, val support: Double) {
    BILINEAR("bilinear", 1.0) {
        override fun weight(x: Double): Double {
            val a = if (x < 0.0) -x else x
            return if (a < 1.0) 1.0 - a else 0.0
        }
    },
    BICUBIC("bicubic", 2.0) {
        /** Keys' cubic with a = -0.5, as Pillow's bicubic_filter. */
        override fun weight(x: Double): Double {
            val a = -0.5
            val t = if (x < 0.0) -x else x
            return when {
                t < 1.0 -> ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
                t < 2.0 -> (((t - 5.0) * t + 8.0) * t - 4.0) * a
                else -> 0.0
            }
        }
    };

    abstract fun weight(x: Double): Double

    companion object {
        fun fromJson(name: String): ResampleFilter =
            entries.firstOrNull { it.jsonName == name }
                ?: throw ModelInfoException("unsupported interpolation '$name' (expected bicubic or bilinear)")
    }
}

/**
 * Pillow's `Image.resize(size, filter)` for 8-bit RGB, reproduced bit-exactly:
 * a separable two-pass (horizontal, then vertical) convolution with the filter's kernel
 * widened by the downscale factor, coefficients normalized per output pixel in double
 * precision, then converted to 22-bit fixed point and accumulated in 32-bit ints with
 * round-half-up and clamping to 0..255 (facts from Pillow's src/libImaging/Resample.c).
 */
object PillowResample {
    private const val PRECISION_BITS = 32 - 8 - 2
    private const val HALF = 1 shl (PRECISION_BITS - 1)

    /** Fixed-point filter taps of one axis: output i reads [count] inputs from [first] with [weights]. */
    internal class Taps(val first: IntArray, val count: IntArray, val weights: IntArray, val kernelSize: Int)

    fun resize(image: ArgbImage, outWidth: Int, outHeight: Int, filter: ResampleFilter): ArgbImage {
        require(outWidth > 0 && outHeight > 0) { "output size must be positive" }
        var current = image
        // Like Pillow, a pass runs only when that axis changes size (it would be the identity otherwise).
        if (outWidth != image.width) current = horizontalPass(current, taps(image.width, outWidth, filter))
        if (outHeight != image.height) current = verticalPass(current, taps(image.height, outHeight, filter))
        return if (current === image) ArgbImage(image.width, image.height, image.pixels.copyOf()) else current
    }

    /** Filter taps for resampling [inSize] samples to [outSize] (Pillow's precompute_coeffs + 8bpc normalization). */
    internal fun taps(inSize: Int, outSize: Int, filter: ResampleFilter): Taps {
        val scale = inSize.toDouble() / outSize
        val filterScale = if (scale < 1.0) 1.0 else scale
        val support = filter.support * filterScale
        val kernelSize = ceil(support).toInt() * 2 + 1
        val inverse = 1.0 / filterScale
        val first = IntArray(outSize)
        val count = IntArray(outSize)
        val weights = IntArray(outSize * kernelSize)
        val w = DoubleArray(kernelSize)
        for (i in 0 until outSize) {
            val center = (i + 0.5) * scale
            val lo = maxOf((center - support + 0.5).toInt(), 0)
            val n = minOf((center + support + 0.5).toInt(), inSize) - lo
            var sum = 0.0
            for (k in 0 until n) {
                w[k] = filter.weight((k + lo - center + 0.5) * inverse)
                sum += w[k]
            }
            for (k in 0 until n) {
                val normalized = if (sum != 0.0) w[k] / sum else w[k]
                weights[i * kernelSize + k] = toFixedPoint(normalized)
            }
            first[i] = lo
            count[i] = n
        }
        return Taps(first, count, weights, kernelSize)
    }

    private fun toFixedPoint(weight: Double): Int =
        if (weight < 0) (-0.5 + weight * (1 shl PRECISION_BITS)).toInt() else (0.5 + weight * (1 shl PRECISION_BITS)).toInt()

    private fun clip8(accumulator: Int): Int {
        val v = accumulator shr PRECISION_BITS
        return if (v < 0) 0 else if (v > 255) 255 else v
    }

    private fun horizontalPass(src: ArgbImage, taps: Taps): ArgbImage {
        val outWidth = taps.first.size
        val out = IntArray(outWidth * src.height)
        for (y in 0 until src.height) {
            val row = y * src.width
            for (x in 0 until outWidth) {
                out[y * outWidth + x] = convolve(src.pixels, row + taps.first[x], 1, taps, x)
            }
        }
        return ArgbImage(outWidth, src.height, out)
    }

    private fun verticalPass(src: ArgbImage, taps: Taps): ArgbImage {
        val outHeight = taps.first.size
        val out = IntArray(src.width * outHeight)
        for (y in 0 until outHeight) {
            for (x in 0 until src.width) {
                out[y * src.width + x] = convolve(src.pixels, taps.first[y] * src.width + x, src.width, taps, y)
            }
        }
        return ArgbImage(src.width, outHeight, out)
    }

    /** One output pixel: taps of output [index] applied to pixels from [start] every [stride]. */
    private fun convolve(pixels: IntArray, start: Int, stride: Int, taps: Taps, index: Int): Int {
        var r = HALF
        var g = HALF
        var b = HALF
        val base = index * taps.kernelSize
        for (k in 0 until taps.count[index]) {
            val p = pixels[start + k * stride]
            val weight = taps.weights[base + k]
            r += ((p shr 16) and 0xFF) * weight
            g += ((p shr 8) and 0xFF) * weight
            b += (p and 0xFF) * weight
        }
        return (0xFF shl 24) or (clip8(r) shl 16) or (clip8(g) shl 8) or clip8(b)
    }
}
