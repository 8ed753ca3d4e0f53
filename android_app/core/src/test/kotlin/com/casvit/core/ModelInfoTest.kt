package com.casvit.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class ModelInfoTest {
    @Test
    fun parsesTheExporterSchema() {
        val info = ModelInfo.parse(TestData.modelJson())
        assertEquals("model.tflite", info.modelFile)
        assertEquals("labels.txt", info.labelsFile)
        assertEquals("xs", info.variant)
        assertEquals("fp32", info.precision)
        assertEquals(1000, info.numClasses)
        assertFalse(info.forDeployment)
        assertEquals("random (seed 0)", info.weightsSource)
        with(info.input) {
            assertEquals(224, height)
            assertEquals(224, width)
            assertEquals(TensorType.FLOAT32, dtype)
            assertEquals(InputScaling.NORMALIZED, scaling)
            assertArrayEquals(floatArrayOf(0.485f, 0.456f, 0.406f), mean, 0f)
            assertArrayEquals(floatArrayOf(0.229f, 0.224f, 0.225f), std, 0f)
            assertNull(quantization)
            assertEquals(224 * 224 * 3 * 4, byteSize)
            assertEquals(0.875, resize.cropPct, 0.0)
            assertEquals(CropMode.CENTER, resize.cropMode)
            assertEquals(ResampleFilter.BICUBIC, resize.filter)
        }
        assertEquals(TensorType.FLOAT32, info.output.dtype)
        assertEquals(1000, info.output.numClasses)
        assertEquals(4000, info.output.byteSize)
        assertEquals(Scores.PROBABILITIES, info.output.scores)
        assertEquals(Scores.LOGITS, ModelInfo.parse(TestData.modelJson(scores = "logits")).output.scores)
    }

    @Test
    fun readsInt8QuantizationOfInputAndOutput() {
        val info = ModelInfo.parse(
            TestData.modelJson(
                inputExtra = """"dtype": "int8", "normalization_embedded": false, "value_range": [0, 1], "quantization": {"scale": 0.0186, "zero_point": -14}""",
                outputExtra = """"dtype": "uint8", "shape": [1, 1000], "quantization": {"scale": 0.1, "zero_point": 128}""",
            ),
        )
        assertEquals(TensorType.INT8, info.input.dtype)
        assertEquals(Quantization(0.0186f, -14), info.input.quantization)
        assertEquals(224 * 224 * 3, info.input.byteSize)
        assertEquals(TensorType.UINT8, info.output.dtype)
        assertEquals(Quantization(0.1f, 128), info.output.quantization)
    }

    @Test
    fun embeddedNormalizationSelectsUnitOrByteInput() {
        val unit = ModelInfo.parse(TestData.modelJson(inputExtra = """"dtype": "float32", "normalization_embedded": true, "value_range": [0.0, 1.0], "quantization": null"""))
        assertEquals(InputScaling.UNIT, unit.input.scaling)
        val byte = ModelInfo.parse(TestData.modelJson(inputExtra = """"dtype": "float32", "normalization_embedded": true, "value_range": [0.0, 255.0], "quantization": null"""))
        assertEquals(InputScaling.BYTE, byte.input.scaling)
    }

    @Test
    fun rejectsWhatTheAppCannotFeed() {
        val cases = mapOf(
            "schema" to TestData.modelJson().replace("casvit-model/3", "casvit-model/9"),
            "interpolation" to TestData.modelJson().replace("\"bicubic\"", "\"lanczos\""),
            "crop_pct" to TestData.modelJson().replace("\"crop_pct\": 0.875", "\"crop_pct\": 1.5"),
            "crop_mode" to TestData.modelJson().replace("\"center\"", "\"border\""),
            "record size" to TestData.modelJson().replace("\"height\": 224, \"width\": 224, \"crop_pct\"", "\"height\": 96, \"width\": 224, \"crop_pct\""),
            "layout" to TestData.modelJson().replace("\"NHWC\"", "\"NCHW\""),
            "dtype" to TestData.modelJson(inputExtra = """"dtype": "float16", "normalization_embedded": false, "value_range": [0, 1], "quantization": null"""),
            "quantization" to TestData.modelJson(inputExtra = """"dtype": "int8", "normalization_embedded": false, "value_range": [0, 1], "quantization": null"""),
            "value_range" to TestData.modelJson(inputExtra = """"dtype": "float32", "normalization_embedded": false, "value_range": [0, 255], "quantization": null"""),
            "num_classes" to TestData.modelJson(outputExtra = """"dtype": "float32", "shape": [1, 10], "quantization": null"""),
            "scores" to TestData.modelJson(scores = "percent"),
            "missing" to TestData.modelJson().replace("\"height\": 224,", ""),
            "json" to TestData.modelJson().dropLast(1),
        )
        for ((what, json) in cases) {
            val e = assertThrows(what, ModelInfoException::class.java) { ModelInfo.parse(json) }
            assertTrue("$what: ${e.message}", e.message!!.isNotBlank())
        }
    }

    @Test
    fun labelsIgnoreBlankLinesAndMustMatchTheClassCount() {
        assertEquals(listOf("tench", "goldfish", "great white shark"), parseLabels("tench\r\ngoldfish\ngreat white shark\n\n", 3))
        assertThrows(ModelInfoException::class.java) { parseLabels("a\nb\n", 3) }
    }
}
