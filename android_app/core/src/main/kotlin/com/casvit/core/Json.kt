package com.casvit.core

/**
 * A minimal JSON reader for the model metadata file.
 *
 * Hand-written on purpose: `core` must stay dependency-free (plain Kotlin stdlib), so it
 * compiles with bare kotlinc and runs on the JVM. org.json is built into Android but is an
 * extra jar on the JVM (Maven's org.json:json, Debian's libandroid-json-java), which the
 * core and its JVM tests would then need on every classpath.
 * Objects become [Map] (insertion-ordered), arrays [List], numbers [Double],
 * strings [String], booleans [Boolean] and `null` null.
 */
object Json {
    /** Parses one JSON value from [text]; throws [JsonException] on malformed input. */
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.readValue()
        reader.skipWhitespace()
        if (!reader.atEnd()) reader.fail("unexpected trailing characters")
        return value
    }

    private class Reader(private val text: String) {
        private var pos = 0

        fun atEnd() = pos >= text.length

        fun fail(message: String): Nothing = throw JsonException("$message at offset $pos")

        fun skipWhitespace() {
            while (!atEnd() && text[pos] in " \t\r\n") pos++
        }

        fun readValue(): Any? {
            skipWhitespace()
            if (atEnd()) fail("unexpected end of input")
            return when (val c = text[pos]) {
                '{' -> readObject()
                '[' -> readArray()
                '"' -> readString()
                't' -> readLiteral("true", true)
                'f' -> readLiteral("false", false)
                'n' -> readLiteral("null", null)
                else -> if (c == '-' || c.isDigit()) readNumber() else fail("unexpected character '$c'")
            }
        }

        private fun readLiteral(word: String, value: Any?): Any? {
            if (!text.startsWith(word, pos)) fail("invalid literal")
            pos += word.length
            return value
        }

        private fun readObject(): Map<String, Any?> {
            val result = LinkedHashMap<String, Any?>()
            pos++ // '{'
            skipWhitespace()
            if (!atEnd() && text[pos] == '}') { pos++; return result }
            while (true) {
                skipWhitespace()
                if (atEnd() || text[pos] != '"') fail("expected a string key")
                val key = readString()
                skipWhitespace()
                expect(':')
                result[key] = readValue()
                skipWhitespace()
                if (atEnd()) fail("unterminated object")
                when (text[pos++]) {
                    ',' -> continue
                    '}' -> return result
                    else -> { pos--; fail("expected ',' or '}'") }
                }
            }
        }

        private fun readArray(): List<Any?> {
            val result = ArrayList<Any?>()
            pos++ // '['
            skipWhitespace()
            if (!atEnd() && text[pos] == ']') { pos++; return result }
            while (true) {
                result.add(readValue())
                skipWhitespace()
                if (atEnd()) fail("unterminated array")
                when (text[pos++]) {
                    ',' -> continue
                    ']' -> return result
                    else -> { pos--; fail("expected ',' or ']'") }
                }
            }
        }

        private fun expect(c: Char) {
            if (atEnd() || text[pos] != c) fail("expected '$c'")
            pos++
        }

        private fun readString(): String {
            pos++ // opening quote
            val out = StringBuilder()
            while (true) {
                if (atEnd()) fail("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> out.append(readEscape())
                    c < ' ' -> { pos--; fail("control character in string") }
                    else -> out.append(c)
                }
            }
        }

        private fun readEscape(): Char {
            if (atEnd()) fail("unterminated escape")
            return when (val c = text[pos++]) {
                '"', '\\', '/' -> c
                'b' -> '\b'
                'f' -> '\u000C'
                'n' -> '\n'
                'r' -> '\r'
                't' -> '\t'
                'u' -> {
                    if (pos + 4 > text.length) fail("short \\u escape")
                    val code = text.substring(pos, pos + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                    pos += 4
                    code.toChar()
                }
                else -> { pos--; fail("bad escape '\\$c'") }
            }
        }

        private fun readNumber(): Double {
            val start = pos
            if (text[pos] == '-') pos++
            while (!atEnd() && (text[pos].isDigit() || text[pos] in ".eE+-")) pos++
            val literal = text.substring(start, pos)
            if (!NUMBER.matches(literal)) { pos = start; fail("malformed number '$literal'") }
            return literal.toDouble()
        }
    }

    private val NUMBER = Regex("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")
}

/** Malformed JSON text. */
class JsonException(message: String) : IllegalArgumentException(message)
