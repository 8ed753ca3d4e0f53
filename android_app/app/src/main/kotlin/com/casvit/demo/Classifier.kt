package com.casvit.demo

import android.content.Context
import android.os.SystemClock
import com.casvit.core.ArgbImage
import com.casvit.core.ModelInfo
import com.casvit.core.ModelInfoException
import com.casvit.core.PackedFiles
import com.casvit.core.Prediction
import com.casvit.core.Predictions
import com.casvit.core.Preprocessor
import com.casvit.core.TensorType
import com.casvit.core.parseLabels
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.Closeable
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

/** Where inference runs. */
sealed class Backend {
    data class Cpu(val threads: Int) : Backend()
    object Gpu : Backend()
}

/** The model files of the app's assets: metadata, labels and the memory-mapped .tflite. */
class ModelAssets(val info: ModelInfo, val labels: List<String>, val model: ByteBuffer) {
    companion object {
        const val METADATA = "model.json"

        /**
         * Reads assets/model.json, memory-maps the model it names and takes the labels from the
         * labels file, or, when there is none, from the model's own TFLite metadata; null when no
         * model is packaged.
         */
        fun load(context: Context): ModelAssets? {
            val assets = context.assets
            val json = try {
                assets.open(METADATA).use { it.readBytes().toString(Charsets.UTF_8) }
            } catch (e: FileNotFoundException) {
                return null
            }
            val info = ModelInfo.parse(json)
            val model = mapModel(context, info.modelFile)
            val labels = try {
                parseLabels(assets.open(info.labelsFile).use { it.readBytes().toString(Charsets.UTF_8) }, info.numClasses)
            } catch (e: FileNotFoundException) {
                PackedFiles.labels(model, info.labelsFile, info.numClasses)
                    ?: throw ModelInfoException("no ${info.labelsFile} in the assets and none packed in ${info.modelFile}")
            }
            return ModelAssets(info, labels, model)
        }

        /** The asset mapped read-only (the Gradle file keeps .tflite uncompressed, which mapping needs). */
        private fun mapModel(context: Context, name: String): ByteBuffer =
            context.assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }
    }
}

/** One classification: top-5 and where the time went. */
class Classification(
    val top: List<Prediction>,
    val preprocessMs: Double,
    val inferenceMs: Double,
    val totalMs: Double,
)

/**
 * A LiteRT interpreter for the packaged model. Adapts to float32/float16/int8 models from
 * the metadata alone: [Preprocessor] writes the input dtype (quantizing when needed) and
 * [Predictions] dequantizes the output. Not thread-safe: use it from one thread.
 */
class Classifier private constructor(
    private val assets: ModelAssets,
    private val interpreter: Interpreter,
    private val gpuDelegate: GpuDelegate?,
    val backend: Backend,
) : Closeable {
    private val preprocessor = Preprocessor(assets.info.input)
    private val input = ByteBuffer.allocateDirect(assets.info.input.byteSize).order(ByteOrder.nativeOrder())
    private val output = ByteBuffer.allocateDirect(assets.info.output.byteSize).order(ByteOrder.nativeOrder())

    val info: ModelInfo get() = assets.info

    /** Preprocesses an upright [image], runs the model and ranks the classes by its probabilities. */
    fun classify(image: ArgbImage): Classification {
        val start = SystemClock.elapsedRealtimeNanos()
        input.clear()
        preprocessor.fill(image, input)
        input.rewind()
        val preprocessed = SystemClock.elapsedRealtimeNanos()
        output.clear()
        interpreter.run(input, output)
        output.rewind()
        val inferred = SystemClock.elapsedRealtimeNanos()
        val spec = assets.info.output
        val top = Predictions.top(Predictions.readScores(output, spec), assets.labels, spec.scores, 5)
        val done = SystemClock.elapsedRealtimeNanos()
        return Classification(top, (preprocessed - start) / 1e6, (inferred - preprocessed) / 1e6, (done - start) / 1e6)
    }

    override fun close() {
        interpreter.close()
        gpuDelegate?.close()
    }

    companion object {
        /**
         * An interpreter on [requested]. When the GPU delegate is unsupported or fails on this
         * model, falls back to CPU with [cpuThreads] and reports why in the second value.
         */
        fun create(assets: ModelAssets, requested: Backend, cpuThreads: Int): Pair<Classifier, String?> {
            if (requested is Backend.Gpu) {
                val failure = try {
                    return createGpu(assets) to null
                } catch (e: Exception) {
                    e.message ?: e.javaClass.simpleName
                }
                return createCpu(assets, cpuThreads) to failure
            }
            return createCpu(assets, (requested as Backend.Cpu).threads) to null
        }

        private fun createCpu(assets: ModelAssets, threads: Int): Classifier {
            val options = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true)
            return checked(assets, Interpreter(assets.model, options), null, Backend.Cpu(threads))
        }

        private fun createGpu(assets: ModelAssets): Classifier {
            val delegate = CompatibilityList().use { compatibility ->
                if (!compatibility.isDelegateSupportedOnThisDevice) {
                    throw UnsupportedOperationException("not supported on this device")
                }
                GpuDelegate(compatibility.bestOptionsForThisDevice)
            }
            val interpreter = try {
                Interpreter(assets.model, Interpreter.Options().addDelegate(delegate))
            } catch (e: Exception) {
                delegate.close()
                throw e
            }
            return checked(assets, interpreter, delegate, Backend.Gpu)
        }

        /** The model file must agree with its metadata; otherwise the buffers would be misread. */
        private fun checked(assets: ModelAssets, interpreter: Interpreter, delegate: GpuDelegate?, backend: Backend): Classifier {
            val info = assets.info
            val problem = mismatch("input", interpreter.getInputTensor(0), info.input.dtype, intArrayOf(1, info.input.height, info.input.width, 3))
                ?: mismatch("output", interpreter.getOutputTensor(0), info.output.dtype, intArrayOf(1, info.numClasses))
            if (problem != null) {
                interpreter.close()
                delegate?.close()
                throw ModelInfoException("${info.modelFile} does not match ${ModelAssets.METADATA}: $problem")
            }
            return Classifier(assets, interpreter, delegate, backend)
        }

        private fun mismatch(what: String, tensor: Tensor, dtype: TensorType, shape: IntArray): String? {
            val expectedType = when (dtype) {
                TensorType.FLOAT32 -> DataType.FLOAT32
                TensorType.INT8 -> DataType.INT8
                TensorType.UINT8 -> DataType.UINT8
            }
            return when {
                tensor.dataType() != expectedType -> "$what is ${tensor.dataType()}, metadata says ${dtype.jsonName}"
                !tensor.shape().contentEquals(shape) -> "$what shape is ${tensor.shape().contentToString()}, metadata says ${shape.contentToString()}"
                else -> null
            }
        }
    }
}
