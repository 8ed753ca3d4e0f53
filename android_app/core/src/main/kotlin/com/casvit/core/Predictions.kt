package com.casvit.core

import java.nio.ByteBuffer
import kotlin.math.exp

/** One ranked class: its index, label and softmax probability. */
data class Prediction(val index: Int, val label: String, val probability: Float)

/** Turns the model's output into ranked predictions: the exporter's models end in a softmax
 * (scores are probabilities); a model whose output is logits gets the softmax here. */
object Predictions {

    /** Reads [spec]'s scores from [buffer] (from its position, native byte order expected), dequantizing int8/uint8. */
    fun readScores(buffer: ByteBuffer, spec: OutputSpec): FloatArray {
        require(buffer.remaining() >= spec.byteSize) { "output buffer too small: ${buffer.remaining()} < ${spec.byteSize}" }
        if (spec.dtype == TensorType.FLOAT32) return FloatArray(spec.numClasses) { buffer.getFloat() }
        val q = requireNotNull(spec.quantization) { "quantized output without quantization parameters" }
        return FloatArray(spec.numClasses) {
            val raw = buffer.get().toInt()
            val value = if (spec.dtype == TensorType.UINT8) raw and 0xFF else raw
            (value - q.zeroPoint) * q.scale
        }
    }

    /** Numerically stable softmax (max subtracted, accumulated in double). */
    fun softmax(logits: FloatArray): FloatArray {
        require(logits.isNotEmpty()) { "no logits" }
        val max = logits.max().toDouble()
        val exps = DoubleArray(logits.size) { exp(logits[it] - max) }
        val sum = exps.sum()
        return FloatArray(logits.size) { (exps[it] / sum).toFloat() }
    }

    /** Indices of the [k] largest [scores], largest first; equal scores keep the lower index first. */
    fun topK(scores: FloatArray, k: Int): IntArray {
        require(k >= 0) { "k must be >= 0" }
        return scores.indices.sortedWith(compareByDescending<Int> { scores[it] }.thenBy { it })
            .take(minOf(k, scores.size)).toIntArray()
    }

    /** The [k] most probable classes of [scores] (ranked by score, exact), with [labels] (one per class);
     * [kind] says whether the scores are probabilities already or logits. */
    fun top(scores: FloatArray, labels: List<String>, kind: Scores, k: Int = 5): List<Prediction> {
        require(labels.size == scores.size) { "${labels.size} labels for ${scores.size} scores" }
        val probabilities = if (kind == Scores.PROBABILITIES) scores else softmax(scores)
        return topK(scores, k).map { Prediction(it, labels[it], probabilities[it]) }
    }
}
