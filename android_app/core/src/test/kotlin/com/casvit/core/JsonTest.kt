package com.casvit.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Test

class JsonTest {
    @Test
    fun parsesNestedValues() {
        val value = Json.parse("""{"a": [1, -2.5e2, true, false, null], "b": {"c": "x"}, "d": []}""") as Map<*, *>
        assertEquals(listOf(1.0, -250.0, true, false, null), value["a"])
        assertEquals(mapOf("c" to "x"), value["b"])
        assertEquals(emptyList<Any?>(), value["d"])
        assertEquals(listOf("a", "b", "d"), value.keys.toList())
    }

    @Test
    fun decodesStringEscapes() {
        assertEquals("q\"b\\s/n\nt\tu\u00e9", Json.parse(""""q\"b\\s\/n\nt\tu\u00e9""""))
    }

    @Test
    fun parsesTopLevelScalarsWithWhitespace() {
        assertEquals(0.229, Json.parse(" \n0.229\t") as Double, 0.0)
        assertNull(Json.parse("null"))
    }

    @Test
    fun rejectsMalformedInput() {
        for (bad in listOf("", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "tru", "\"abc", "[1] x", "{a:1}", "\"\\x\"", "\"a\nb\"")) {
            assertThrows("should reject <$bad>", JsonException::class.java) { Json.parse(bad) }
        }
    }
}
