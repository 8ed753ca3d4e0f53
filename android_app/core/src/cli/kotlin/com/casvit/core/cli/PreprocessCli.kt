package com.casvit.core.cli

import com.casvit.core.ArgbImage
import com.casvit.core.ModelInfo
import com.casvit.core.PackedFiles
import com.casvit.core.Preprocessor
import com.casvit.core.parseLabels
import java.io.DataInputStream
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.system.exitProcess

/**
 * JVM command line over the core preprocessing, for the cross-language parity test:
 *
 *     java -jar preprocess-cli.jar MODEL_JSON IMAGE_PPM OUT_F32
 *
 * Reads the model metadata and a binary PPM (P6, maxval 255) image, runs exactly the
 * app's preprocessing and writes the float32 NHWC tensor as raw little-endian floats.
 * When the labels file the metadata names sits beside it, it is checked as the app does
 * and "labels: N" is printed; otherwise the labels packed in the model file (TFLite
 * metadata) are used, as the app does, and "labels: N (from the model)" is printed.
 */
fun main(args: Array<String>) {
    if (args.size != 3) {
        System.err.println("usage: preprocess-cli MODEL_JSON IMAGE_PPM OUT_F32")
        exitProcess(2)
    }
    val metadata = File(args[0])
    val info = ModelInfo.parse(metadata.readText())
    val labels = File(metadata.absoluteFile.parentFile, info.labelsFile)
    val model = File(metadata.absoluteFile.parentFile, info.modelFile)
    if (labels.isFile) {
        println("labels: ${parseLabels(labels.readText(), info.numClasses).size}")
    } else if (model.isFile) {
        val packed = PackedFiles.labels(ByteBuffer.wrap(model.readBytes()), info.labelsFile, info.numClasses)
        if (packed != null) println("labels: ${packed.size} (from the model)")
    }
    val image = readPpm(File(args[1]))
    val tensor = Preprocessor(info.input).toFloatTensor(image)
    val bytes = ByteBuffer.allocate(tensor.size * 4).order(ByteOrder.LITTLE_ENDIAN)
    tensor.forEach { bytes.putFloat(it) }
    File(args[2]).writeBytes(bytes.array())
}

/** Reads a binary PPM (P6, maxval 255; '#' comments allowed) as opaque ARGB pixels. */
fun readPpm(file: File): ArgbImage = DataInputStream(file.inputStream().buffered()).use { input ->
    fun token(): String {
        val sb = StringBuilder()
        while (true) {
            val c = input.read()
            require(c >= 0) { "truncated PPM header" }
            when {
                c == '#'.code -> while (input.read().let { it >= 0 && it != '\n'.code }) Unit
                Character.isWhitespace(c) -> if (sb.isNotEmpty()) return sb.toString()
                else -> sb.append(c.toChar())
            }
        }
    }
    require(token() == "P6") { "not a binary PPM (P6)" }
    val width = token().toInt()
    val height = token().toInt()
    require(token() == "255") { "only maxval 255 is supported" }
    val rgb = ByteArray(width * height * 3)
    input.readFully(rgb)
    val pixels = IntArray(width * height) {
        val r = rgb[3 * it].toInt() and 0xFF
        val g = rgb[3 * it + 1].toInt() and 0xFF
        val b = rgb[3 * it + 2].toInt() and 0xFF
        (0xFF shl 24) or (r shl 16) or (g shl 8) or b
    }
    ArgbImage(width, height, pixels)
}
