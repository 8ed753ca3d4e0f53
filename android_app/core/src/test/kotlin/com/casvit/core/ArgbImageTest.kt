package com.casvit.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotSame
import org.junit.Test

class ArgbImageTest {
    /** A 5x3 seeded-noise image and Pillow 13's BILINEAR resizes of it (values from Image.resize). */
    private val source = TestData.image(
        5, 3,
        listOf(
            listOf(139, 74, 229), listOf(241, 169, 65), listOf(6, 160, 149), listOf(106, 38, 175), listOf(188, 205, 175),
            listOf(229, 98, 249), listOf(10, 148, 95), listOf(86, 147, 198), listOf(66, 39, 106), listOf(213, 171, 45),
            listOf(167, 57, 69), listOf(81, 55, 14), listOf(153, 178, 215), listOf(76, 52, 39), listOf(250, 72, 215),
        ),
    )

    @Test
    fun downscaleMatchesPillowBilinear() {
        val expected = listOf(
            listOf(165, 117, 168), listOf(74, 131, 143), listOf(152, 126, 136),
            listOf(132, 80, 97), listOf(99, 123, 140), listOf(166, 82, 114),
        )
        assertEquals(expected, TestData.rgbOf(source.resizeBilinear(3, 2)))
    }

    @Test
    fun upscaleMatchesPillowBilinear() {
        val expected = listOf(
            listOf(139, 74, 229), listOf(197, 128, 135), listOf(174, 166, 89), listOf(6, 160, 149), listOf(77, 73, 168), listOf(141, 110, 175), listOf(188, 205, 175),
            listOf(195, 89, 242), listOf(139, 127, 151), listOf(85, 155, 111), listOf(56, 152, 180), listOf(74, 71, 146), listOf(134, 101, 116), listOf(204, 184, 94),
            listOf(206, 83, 182), listOf(109, 100, 115), listOf(58, 126, 104), listOf(111, 159, 204), listOf(82, 77, 116), listOf(137, 83, 93), listOf(227, 134, 109),
            listOf(167, 57, 69), listOf(118, 56, 38), listOf(102, 90, 71), listOf(153, 178, 215), listOf(98, 88, 89), listOf(151, 61, 114), listOf(250, 72, 215),
        )
        assertEquals(expected, TestData.rgbOf(source.resizeBilinear(7, 4)))
    }

    @Test
    fun singleAxisResizesMatchPillow() {
        val heightOnly = listOf(
            listOf(173, 83, 237), listOf(154, 161, 76), listOf(36, 155, 167), listOf(91, 38, 149), listOf(197, 192, 126),
            listOf(190, 72, 137), listOf(54, 90, 44), listOf(128, 166, 209), listOf(72, 47, 64), listOf(236, 109, 151),
        )
        assertEquals(heightOnly, TestData.rgbOf(source.resizeBilinear(5, 2)))
        val mixed = listOf(
            listOf(149, 131, 141), listOf(115, 125, 164), listOf(99, 127, 168),
            listOf(115, 110, 107), listOf(124, 83, 78), listOf(149, 87, 134),
        )
        assertEquals(mixed, TestData.rgbOf(source.resizeBilinear(2, 3)))
    }

    @Test
    fun sameSizeResizeIsACopy() {
        val copy = source.resizeBilinear(5, 3)
        assertNotSame(source.pixels, copy.pixels)
        assertArrayEquals(source.pixels, copy.pixels)
    }

    @Test
    fun fixedPointTapsSumToOne() {
        for ((inSize, outSize) in listOf(451 to 64, 300 to 224, 64 to 224, 7 to 3)) {
            val taps = PillowBilinear.taps(inSize, outSize)
            for (i in 0 until outSize) {
                val sum = (0 until taps.count[i]).sumOf { taps.weights[i * taps.kernelSize + it] }
                assertEquals("taps $inSize->$outSize #$i", (1 shl 22).toDouble(), sum.toDouble(), 2.0)
            }
        }
    }

    @Test
    fun centeredCropBoxMatchesPython() {
        // Expected boxes from casvit.preprocess.center_crop_box.
        assertEquals(CropBox(75, 0, 375, 300), CropBox.centered(451, 300, 64, 64))
        assertEquals(CropBox(0, 75, 300, 375), CropBox.centered(300, 451, 64, 64))
        assertEquals(CropBox(80, 0, 560, 480), CropBox.centered(640, 480, 224, 224))
        assertEquals(CropBox(85, 0, 426, 512), CropBox.centered(512, 512, 64, 96))
        assertEquals(CropBox(498, 0, 501, 3), CropBox.centered(1000, 3, 224, 224))
        assertEquals(CropBox(0, 0, 7, 4), CropBox.centered(7, 5, 3, 2))
    }

    @Test
    fun cropCopiesTheBox() {
        val cropped = source.crop(CropBox(1, 1, 4, 3))
        assertEquals(3, cropped.width)
        assertEquals(2, cropped.height)
        assertEquals(
            listOf(listOf(10, 148, 95), listOf(86, 147, 198), listOf(66, 39, 106), listOf(81, 55, 14), listOf(153, 178, 215), listOf(76, 52, 39)),
            TestData.rgbOf(cropped),
        )
    }

    /** 3x2 image whose pixel values are their letters a..f: a b c / d e f. */
    private val letters = ArgbImage(3, 2, intArrayOf(0xa, 0xb, 0xc, 0xd, 0xe, 0xf))

    private fun ArgbImage.rows() = (0 until height).map { y -> (0 until width).map { x -> pixels[y * width + x].toString(16) }.joinToString("") }

    @Test
    fun orientedRotatesClockwise() {
        assertEquals(listOf("abc", "def"), letters.oriented(0).rows())
        assertEquals(listOf("da", "eb", "fc"), letters.oriented(90).rows())
        assertEquals(listOf("fed", "cba"), letters.oriented(180).rows())
        assertEquals(listOf("cf", "be", "ad"), letters.oriented(270).rows())
    }

    @Test
    fun orientedMirrorsBeforeRotating() {
        assertEquals(listOf("cba", "fed"), letters.oriented(0, mirror = true).rows())
        assertEquals(listOf("fc", "eb", "da"), letters.oriented(90, mirror = true).rows())
        assertEquals(listOf("def", "abc"), letters.oriented(180, mirror = true).rows())
    }
}
