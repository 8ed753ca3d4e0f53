package com.casvit.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class PredictionsTest {
    @Test
    fun softmaxIsAProbabilityDistribution() {
        val p = Predictions.softmax(floatArrayOf(1f, 2f, 3f))
        assertEquals(1.0, p.sumOf { it.toDouble() }, 1e-6)
        val e = doubleArrayOf(Math.exp(1.0), Math.exp(2.0), Math.exp(3.0))
        assertArrayEquals(FloatArray(3) { (e[it] / e.sum()).toFloat() }, p, 1e-7f)
    }

    @Test
    fun softmaxIsStableForLargeLogits() {
        val p = Predictions.softmax(floatArrayOf(1000f, 1000f, -1000f))
        assertArrayEquals(floatArrayOf(0.5f, 0.5f, 0f), p, 0f)
    }

    @Test
    fun topKRanksDescendingWithLowerIndexFirstOnTies() {
        assertArrayEquals(intArrayOf(3, 1, 4, 0), Predictions.topK(floatArrayOf(0.1f, 0.5f, -2f, 0.9f, 0.5f), 4))
        assertArrayEquals(intArrayOf(1, 0), Predictions.topK(floatArrayOf(1f, 2f), 5))
    }

    @Test
    fun topFiveOfLogitsCarriesLabelsAndSoftmaxProbabilities() {
        val logits = FloatArray(10) { it.toFloat() }
        val top = Predictions.top(logits, List(10) { "class $it" }, Scores.LOGITS)
        assertEquals(listOf(9, 8, 7, 6, 5), top.map { it.index })
        assertEquals("class 9", top[0].label)
        assertEquals(Predictions.softmax(logits)[9], top[0].probability, 0f)
        assertTrue(top.zipWithNext().all { (a, b) -> a.probability >= b.probability })
    }

    @Test
    fun topFiveOfProbabilitiesKeepsTheModelsOwnProbabilities() {
        val probabilities = Predictions.softmax(FloatArray(10) { it * 0.5f })
        val top = Predictions.top(probabilities, List(10) { "class $it" }, Scores.PROBABILITIES)
        assertEquals(listOf(9, 8, 7, 6, 5), top.map { it.index })
        assertEquals(probabilities[9], top[0].probability, 0f)
        assertEquals(probabilities[5], top[4].probability, 0f)
    }

    @Test
    fun readsFloatAndDequantizesIntegerOutputs() {
        val f32 = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putFloat(1.5f).putFloat(-2f).putFloat(0f)
        f32.flip()
        assertArrayEquals(floatArrayOf(1.5f, -2f, 0f), Predictions.readScores(f32, OutputSpec("logits", TensorType.FLOAT32, 3, null)), 0f)

        val q = Quantization(0.5f, -3)
        val i8 = ByteBuffer.wrap(byteArrayOf(-3, 127, -128))
        assertArrayEquals(floatArrayOf(0f, 65f, -62.5f), Predictions.readScores(i8, OutputSpec("logits", TensorType.INT8, 3, q)), 0f)

        val u8 = ByteBuffer.wrap(byteArrayOf(0, 128.toByte(), 255.toByte()))
        val qu = Quantization(0.25f, 128)
        assertArrayEquals(floatArrayOf(-32f, 0f, 31.75f), Predictions.readScores(u8, OutputSpec("logits", TensorType.UINT8, 3, qu)), 0f)
    }
}
