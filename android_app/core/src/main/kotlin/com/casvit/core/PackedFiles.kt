package com.casvit.core

import java.io.ByteArrayInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.zip.ZipInputStream

/**
 * The associated files a .tflite carries under the TFLite metadata format: a zip archive
 * appended to the flatbuffer (the exporter packs `labels.txt` there). Locating the archive
 * inside the model bytes is written here (no library reads a zip that starts mid-file from
 * a buffer); reading its entries is java.util.zip's.
 */
object PackedFiles {
    private const val END_OF_CENTRAL_DIRECTORY = 0x06054b50
    private const val CENTRAL_DIRECTORY_ENTRY = 0x02014b50
    private const val END_RECORD_SIZE = 22
    private const val MAX_COMMENT = 0xFFFF

    /** Name -> bytes of every file packed after the model; empty when the model has none. */
    fun read(model: ByteBuffer): Map<String, ByteArray> {
        val bytes = model.duplicate().order(ByteOrder.LITTLE_ENDIAN)
        val start = archiveStart(bytes) ?: return emptyMap()
        val archive = ByteArray(bytes.limit() - start)
        bytes.position(start)
        bytes.get(archive)
        val files = LinkedHashMap<String, ByteArray>()
        ZipInputStream(ByteArrayInputStream(archive)).use { zip ->
            while (true) {
                val entry = zip.nextEntry ?: break
                if (!entry.isDirectory) files[entry.name] = zip.readBytes()
            }
        }
        return files
    }

    /** The labels packed in the model, checked like a labels file; null when it packs none named [name]. */
    fun labels(model: ByteBuffer, name: String, expectedCount: Int): List<String>? =
        read(model)[name]?.let { parseLabels(it.toString(Charsets.UTF_8), expectedCount) }

    /**
     * Offset of the archive's first local header: the end-of-central-directory record (searched
     * backwards) gives the central directory's size and its offset relative to the archive; the
     * difference to where it really sits is the length of what precedes the archive.
     */
    private fun archiveStart(b: ByteBuffer): Int? {
        val limit = b.limit()
        val lowest = maxOf(0, limit - END_RECORD_SIZE - MAX_COMMENT)
        var end = limit - END_RECORD_SIZE
        while (end >= lowest && b.getInt(end) != END_OF_CENTRAL_DIRECTORY) end--
        if (end < lowest) return null
        val entries = b.getShort(end + 10).toInt() and 0xFFFF
        val size = b.getInt(end + 12)
        val offset = b.getInt(end + 16)
        val directory = end - size
        if (entries == 0 || size <= 0 || directory < 0 || b.getInt(directory) != CENTRAL_DIRECTORY_ENTRY) return null
        val prefix = directory - offset
        val firstHeader = prefix + b.getInt(directory + 42) // the first entry's local header offset
        return if (prefix < 0 || firstHeader < 0 || firstHeader >= directory) null else firstHeader
    }
}
