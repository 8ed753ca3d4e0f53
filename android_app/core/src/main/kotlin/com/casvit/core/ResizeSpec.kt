package com.casvit.core

/** How the record fits an image to the input: a center crop after a resize, or a plain resize. */
enum class CropMode(val jsonName: String) {
    CENTER("center"),
    SQUASH("squash");

    companion object {
        fun fromJson(name: String): CropMode =
            entries.firstOrNull { it.jsonName == name }
                ?: throw ModelInfoException("unsupported crop_mode '$name' (expected center or squash)")
    }
}

/**
 * The geometric part of the exporter's preprocessing record (casvit/preprocess.py),
 * with the same integer and double arithmetic so the pixels agree exactly:
 *
 * - [CropMode.CENTER]: scale the image, keeping its aspect ratio, to the smallest size
 *   covering `int(H / cropPct) x int(W / cropPct)` (the other side truncated:
 *   torchvision's `Resize(int)`), then crop `H x W` at offsets `round((s - t) / 2)`
 *   with round half to even (torchvision's `CenterCrop`, Python's `round`);
 * - [CropMode.SQUASH]: resize the whole image to `W x H`.
 */
class ResizeSpec(val cropPct: Double, val cropMode: CropMode, val filter: ResampleFilter) {
    init {
        if (!(cropPct > 0.0 && cropPct <= 1.0)) throw ModelInfoException("crop_pct must be in (0, 1], got $cropPct")
    }

    /** (width, height) an [imageWidth] x [imageHeight] image is resized to, for an [outWidth] x [outHeight] input. */
    fun scaledSize(imageWidth: Int, imageHeight: Int, outWidth: Int, outHeight: Int): Pair<Int, Int> {
        if (cropMode == CropMode.SQUASH) return outWidth to outHeight
        val coverH = (outHeight / cropPct).toInt()
        val coverW = (outWidth / cropPct).toInt()
        // Products are exact in Long and in Double (< 2^53): the division rounds once, as Python's int / int.
        return if (imageWidth.toLong() * coverH >= imageHeight.toLong() * coverW) {
            ((coverH.toLong() * imageWidth).toDouble() / imageHeight).toInt() to coverH
        } else {
            coverW to ((coverW.toLong() * imageHeight).toDouble() / imageWidth).toInt()
        }
    }

    companion object {
        /** The centered [outWidth] x [outHeight] box of a [width] x [height] image (torchvision's rounding). */
        fun centerBox(width: Int, height: Int, outWidth: Int, outHeight: Int): CropBox {
            val left = Math.rint((width - outWidth) / 2.0).toInt()
            val top = Math.rint((height - outHeight) / 2.0).toInt()
            return CropBox(left, top, left + outWidth, top + outHeight)
        }
    }
}
