import org.jetbrains.kotlin.gradle.dsl.JvmTarget

// Pure Kotlin/JVM module (no Android classes): preprocessing, metadata, softmax/top-k.
// The command line builds it with bare kotlinc instead (tools/android_test.sh).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    testImplementation(libs.junit)
}
