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

    private fun ArgbImage.bilinear(w: Int, h: Int) = resize(w, h, ResampleFilter.BILINEAR)

    private fun ArgbImage.bicubic(w: Int, h: Int) = resize(w, h, ResampleFilter.BICUBIC)

    @Test
    fun bicubicMatchesPillow() {
        // Pillow 13's Image.resize(size, Image.BICUBIC) of the same 5x3 source.
        val down = listOf(
            listOf(169, 121, 172), listOf(66, 130, 140), listOf(150, 127, 138),
            listOf(131, 79, 95), listOf(90, 123, 137), listOf(170, 80, 114),
        )
        assertEquals(down, TestData.rgbOf(source.bicubic(3, 2)))
        val up = listOf(
            listOf(127, 67, 238), listOf(218, 128, 131), listOf(198, 178, 71), listOf(2, 161, 146), listOf(69, 55, 173), listOf(150, 104, 182), listOf(191, 217, 182),
            listOf(206, 88, 255), listOf(142, 132, 156), listOf(73, 168, 100), listOf(51, 150, 179), listOf(63, 53, 153), listOf(135, 98, 110), listOf(209, 200, 78),
            listOf(224, 83, 188), listOf(98, 97, 109), listOf(31, 128, 96), listOf(117, 158, 208), listOf(70, 66, 111), listOf(135, 75, 78), listOf(236, 137, 100),
            listOf(168, 55, 62), listOf(115, 44, 18), listOf(98, 85, 62), listOf(156, 180, 216), listOf(85, 87, 72), listOf(149, 50, 107), listOf(255, 67, 235),
        )
        assertEquals(up, TestData.rgbOf(source.bicubic(7, 4))) // overshoot clamps to 0 and 255
        val mixed = listOf(
            listOf(147, 129, 142), listOf(113, 128, 164), listOf(99, 127, 175),
            listOf(115, 112, 102), listOf(123, 85, 76), listOf(152, 89, 141),
        )
        assertEquals(mixed, TestData.rgbOf(source.bicubic(2, 3)))
    }

    @Test
    fun downscaleMatchesPillowBilinear() {
        val expected = listOf(
            listOf(165, 117, 168), listOf(74, 131, 143), listOf(152, 126, 136),
            listOf(132, 80, 97), listOf(99, 123, 140), listOf(166, 82, 114),
        )
        assertEquals(expected, TestData.rgbOf(source.bilinear(3, 2)))
    }

    @Test
    fun upscaleMatchesPillowBilinear() {
        val expected = listOf(
            listOf(139, 74, 229), listOf(197, 128, 135), listOf(174, 166, 89), listOf(6, 160, 149), listOf(77, 73, 168), listOf(141, 110, 175), listOf(188, 205, 175),
            listOf(195, 89, 242), listOf(139, 127, 151), listOf(85, 155, 111), listOf(56, 152, 180), listOf(74, 71, 146), listOf(134, 101, 116), listOf(204, 184, 94),
            listOf(206, 83, 182), listOf(109, 100, 115), listOf(58, 126, 104), listOf(111, 159, 204), listOf(82, 77, 116), listOf(137, 83, 93), listOf(227, 134, 109),
            listOf(167, 57, 69), listOf(118, 56, 38), listOf(102, 90, 71), listOf(153, 178, 215), listOf(98, 88, 89), listOf(151, 61, 114), listOf(250, 72, 215),
        )
        assertEquals(expected, TestData.rgbOf(source.bilinear(7, 4)))
    }

    @Test
    fun singleAxisResizesMatchPillow() {
        val heightOnly = listOf(
            listOf(173, 83, 237), listOf(154, 161, 76), listOf(36, 155, 167), listOf(91, 38, 149), listOf(197, 192, 126),
            listOf(190, 72, 137), listOf(54, 90, 44), listOf(128, 166, 209), listOf(72, 47, 64), listOf(236, 109, 151),
        )
        assertEquals(heightOnly, TestData.rgbOf(source.bilinear(5, 2)))
        val mixed = listOf(
            listOf(149, 131, 141), listOf(115, 125, 164), listOf(99, 127, 168),
            listOf(115, 110, 107), listOf(124, 83, 78), listOf(149, 87, 134),
        )
        assertEquals(mixed, TestData.rgbOf(source.bilinear(2, 3)))
    }

    @Test
    fun sameSizeResizeIsACopy() {
        val copy = source.bilinear(5, 3)
        assertNotSame(source.pixels, copy.pixels)
        assertArrayEquals(source.pixels, copy.pixels)
    }

    @Test
    fun fixedPointTapsSumToOne() {
        for (filter in ResampleFilter.entries) {
            for ((inSize, outSize) in listOf(451 to 64, 300 to 224, 64 to 224, 7 to 3)) {
                val taps = PillowResample.taps(inSize, outSize, filter)
                for (i in 0 until outSize) {
                    val sum = (0 until taps.count[i]).sumOf { taps.weights[i * taps.kernelSize + it] }
                    // each tap is rounded to the nearest fixed-point step once
                    assertEquals("$filter taps $inSize->$outSize #$i", (1 shl 22).toDouble(), sum.toDouble(), taps.count[i] / 2.0)
                }
            }
        }
    }

    @Test
    fun resizeGeometryIsTorchvisions() {
        // Worked out by hand from torchvision's rules (as tests/test_preprocess.py): long side
        // int(size * long / short), crop offsets round((s - t) / 2) half to even.
        val center = ResizeSpec(0.875, CropMode.CENTER, ResampleFilter.BICUBIC)
        assertEquals(109 to 73, center.scaledSize(451, 300, 64, 64))
        assertEquals(CropBox(22, 4, 86, 68), ResizeSpec.centerBox(109, 73, 64, 64))
        assertEquals(73 to 109, center.scaledSize(300, 451, 64, 64))
        assertEquals(256 to 384, center.scaledSize(333, 500, 224, 224))
        assertEquals(CropBox(16, 80, 240, 304), ResizeSpec.centerBox(256, 384, 224, 224))
        assertEquals(329 to 219, center.scaledSize(451, 300, 256, 192)) // non-square: cover 292x219
        assertEquals(CropBox(36, 14, 292, 206), ResizeSpec.centerBox(329, 219, 256, 192))
        assertEquals(292 to 584, center.scaledSize(300, 600, 256, 192))
        val whole = ResizeSpec(1.0, CropMode.CENTER, ResampleFilter.BILINEAR)
        assertEquals(101 to 64, whole.scaledSize(97, 61, 64, 64))
        assertEquals(CropBox(18, 0, 82, 64), ResizeSpec.centerBox(101, 64, 64, 64))
        assertEquals(71 to 71, ResizeSpec(0.9, CropMode.CENTER, ResampleFilter.BILINEAR).scaledSize(65, 65, 64, 64))
        assertEquals(CropBox(4, 4, 68, 68), ResizeSpec.centerBox(71, 71, 64, 64))
        assertEquals(384 to 384, ResizeSpec(0.875, CropMode.SQUASH, ResampleFilter.BICUBIC).scaledSize(451, 300, 384, 384))
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
