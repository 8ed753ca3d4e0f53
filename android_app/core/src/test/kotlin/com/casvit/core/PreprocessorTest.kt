package com.casvit.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class PreprocessorTest {
    private fun spec(inputExtra: String) = ModelInfo.parse(TestData.modelJson(inputExtra = inputExtra)).input

    private val normalized = spec(""""dtype": "float32", "normalization_embedded": false, "value_range": [0.0, 1.0], "quantization": null""")
    private val unit = spec(""""dtype": "float32", "normalization_embedded": true, "value_range": [0.0, 1.0], "quantization": null""")
    private val byte = spec(""""dtype": "float32", "normalization_embedded": true, "value_range": [0.0, 255.0], "quantization": null""")
    private val int8 = spec(""""dtype": "int8", "normalization_embedded": false, "value_range": [0.0, 1.0], "quantization": {"scale": 0.02, "zero_point": -10}""")
    private val uint8 = spec(""""dtype": "uint8", "normalization_embedded": true, "value_range": [0.0, 255.0], "quantization": {"scale": 1.0, "zero_point": 0}""")

    /** A 224x224 image with one color, so every output pixel equals it. */
    private fun flat(r: Int, g: Int, b: Int) = ArgbImage(300, 224, IntArray(300 * 224) { TestData.argb(r, g, b) })

    @Test
    fun normalizedUsesFloat32MeanStdMath() {
        val t = Preprocessor(normalized).toFloatTensor(flat(255, 0, 128))
        assertEquals(224 * 224 * 3, t.size)
        val expected = floatArrayOf((1f - 0.485f) / 0.229f, (0f - 0.456f) / 0.224f, (128f / 255f - 0.406f) / 0.225f)
        assertArrayEquals(expected, t.copyOfRange(0, 3), 0f)
        assertArrayEquals(expected, t.copyOfRange(t.size - 3, t.size), 0f)
    }

    @Test
    fun unitAndByteScaling() {
        assertArrayEquals(floatArrayOf(1f, 0f, 128f / 255f), Preprocessor(unit).toFloatTensor(flat(255, 0, 128)).copyOfRange(0, 3), 0f)
        assertArrayEquals(floatArrayOf(255f, 0f, 128f), Preprocessor(byte).toFloatTensor(flat(255, 0, 128)).copyOfRange(0, 3), 0f)
    }

    @Test
    fun tensorIsNhwcInRgbOrder() {
        val image = ArgbImage(224, 224, IntArray(224 * 224) { TestData.argb(it % 224, it / 224, 7) })
        val whole = ModelInfo.parse(
            TestData.modelJson(inputExtra = """"dtype": "float32", "normalization_embedded": true, "value_range": [0.0, 255.0], "quantization": null""")
                .replace("\"crop_pct\": 0.875", "\"crop_pct\": 1.0"),
        ).input // crop_pct 1 on an image at the input size: no resize, no crop
        val t = Preprocessor(whole).toFloatTensor(image)
        val (y, x) = 5 to 9
        assertArrayEquals(floatArrayOf(x.toFloat(), y.toFloat(), 7f), t.copyOfRange((y * 224 + x) * 3, (y * 224 + x) * 3 + 3), 0f)
    }

    @Test
    fun quantizeRoundsHalfToEvenAndClamps() {
        val q = Quantization(0.5f, 3)
        assertEquals(4, Preprocessor.quantize(0.25f, q, TensorType.INT8)) // 0.5 + 3 = 3.5 -> 4
        assertEquals(4, Preprocessor.quantize(0.75f, q, TensorType.INT8)) // 1.5 + 3 = 4.5 -> 4
        assertEquals(6, Preprocessor.quantize(1.25f, q, TensorType.INT8)) // 2.5 + 3 = 5.5 -> 6
        assertEquals(2, Preprocessor.quantize(-0.3f, q, TensorType.INT8))
        assertEquals(127, Preprocessor.quantize(1000f, q, TensorType.INT8))
        assertEquals(-128, Preprocessor.quantize(-1000f, q, TensorType.INT8))
        assertEquals(255, Preprocessor.quantize(1000f, q, TensorType.UINT8))
        assertEquals(0, Preprocessor.quantize(-1000f, q, TensorType.UINT8))
    }

    @Test
    fun writesEachDtype() {
        val image = flat(255, 0, 128)
        val f32 = ByteBuffer.allocate(normalized.byteSize).order(ByteOrder.LITTLE_ENDIAN)
        Preprocessor(normalized).fill(image, f32)
        assertEquals(0, f32.remaining())
        assertEquals((1f - 0.485f) / 0.229f, f32.getFloat(0), 0f)

        val i8 = ByteBuffer.allocate(int8.byteSize)
        Preprocessor(int8).fill(image, i8)
        assertEquals(0, i8.remaining())
        val first = (1f - 0.485f) / 0.229f
        assertEquals(Math.rint((first / 0.02f - 10f).toDouble()).toInt(), i8.get(0).toInt())

        val u8 = ByteBuffer.allocate(uint8.byteSize)
        Preprocessor(uint8).fill(image, u8)
        assertEquals(listOf(255, 0, 128), (0 until 3).map { u8.get(it).toInt() and 0xFF })
    }
}
