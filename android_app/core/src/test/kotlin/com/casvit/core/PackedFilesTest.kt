package com.casvit.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.util.zip.ZipEntry
import java.util.zip.ZipOutputStream

class PackedFilesTest {
    /** Some bytes standing for the flatbuffer, then a zip of [files] (as the exporter appends it). */
    private fun model(prefix: ByteArray, files: Map<String, String>): ByteBuffer {
        val zip = ByteArrayOutputStream()
        ZipOutputStream(zip).use { out ->
            for ((name, text) in files) {
                out.putNextEntry(ZipEntry(name))
                out.write(text.toByteArray())
                out.closeEntry()
            }
        }
        // ZipOutputStream writes offsets relative to the archive: the reader must add the prefix.
        return ByteBuffer.wrap(prefix + zip.toByteArray())
    }

    @Test
    fun readsFilesAppendedToTheModel() {
        val prefix = ByteArray(1000) { (it * 37).toByte() }
        val files = PackedFiles.read(model(prefix, mapOf("labels.txt" to "cat\ndog\n", "notes.txt" to "x")))
        assertEquals(setOf("labels.txt", "notes.txt"), files.keys)
        assertArrayEquals("cat\ndog\n".toByteArray(), files["labels.txt"])
        assertEquals(listOf("cat", "dog"), PackedFiles.labels(model(prefix, mapOf("labels.txt" to "cat\ndog\n")), "labels.txt", 2))
    }

    @Test
    fun noArchiveMeansNoFiles() {
        assertTrue(PackedFiles.read(ByteBuffer.wrap(ByteArray(4096) { it.toByte() })).isEmpty())
        assertTrue(PackedFiles.read(ByteBuffer.wrap(ByteArray(0))).isEmpty())
        assertNull(PackedFiles.labels(model(ByteArray(10), mapOf("other.txt" to "a")), "labels.txt", 1))
    }

    @Test
    fun packedLabelsAreCheckedLikeALabelsFile() {
        assertThrows(ModelInfoException::class.java) {
            PackedFiles.labels(model(ByteArray(10), mapOf("labels.txt" to "a\nb\n")), "labels.txt", 3)
        }
    }
}
