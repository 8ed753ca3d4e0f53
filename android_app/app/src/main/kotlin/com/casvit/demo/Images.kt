package com.casvit.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.camera.core.ImageProxy
import androidx.exifinterface.media.ExifInterface
import com.casvit.core.ArgbImage
import java.io.IOException

/** The bitmap's pixels as `0xAARRGGBB` ints (the layout core expects). */
fun Bitmap.toArgbImage(): ArgbImage {
    val pixels = IntArray(width * height)
    getPixels(pixels, 0, width, 0, 0, width, height)
    return ArgbImage(width, height, pixels)
}

/** An analysis frame (RGBA_8888 output format), turned upright with the frame's rotation. */
fun ImageProxy.toUprightArgbImage(): ArgbImage = toBitmap().toArgbImage().oriented(imageInfo.rotationDegrees)

/** An ArgbImage back to a bitmap for display. */
fun ArgbImage.toBitmap(): Bitmap = Bitmap.createBitmap(pixels, width, height, Bitmap.Config.ARGB_8888)

/**
 * Decodes a picked image at full resolution (the reference preprocessing resizes from the
 * original pixels) and applies its EXIF orientation, as photo viewers do.
 */
fun decodeUpright(context: Context, uri: Uri): ArgbImage {
    val resolver = context.contentResolver
    val options = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
    val bitmap = resolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, options) }
        ?: throw IOException("not a decodable image")
    val exif = resolver.openInputStream(uri)?.use { ExifInterface(it) }
    val image = bitmap.toArgbImage()
    bitmap.recycle()
    return if (exif == null) image else image.oriented(exif.rotationDegrees, mirror = exif.isFlipped)
}
