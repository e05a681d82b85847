// Android library module: uniffi-generated Kotlin + the `suspend` facade + jniLibs.
//
// Layout filled by `cargo xtask android` (both folders are git-ignored):
//   src/main/jniLibs/<abi>/libcountersign_ffi.so   arm64-v8a, armeabi-v7a, x86_64, x86
//   src/main/generated/org/countersign/countersign.kt
// Build: gradle -p bindings/kotlin assembleRelease  ->  build/outputs/aar/countersign-release.aar
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
    `maven-publish`
}

group = "org.countersign"
version = "0.1.0"

android {
    namespace = "org.countersign"
    compileSdk = 35

    defaultConfig {
        // Keep in step with ANDROID_API in xtask/src/mobile.rs.
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            kotlin.srcDirs("src/main/kotlin", "src/main/generated")
            jniLibs.srcDirs("src/main/jniLibs")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // uniffi calls the native library through JNA; the @aar carries JNA's own .so files.
    api("net.java.dev.jna:jna:5.15.0@aar")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}

publishing {
    publications {
        register<MavenPublication>("release") {
            artifactId = "countersign"
            afterEvaluate { from(components["release"]) }
        }
    }
}

// Fail early with the command to run when the Rust side was not built.
tasks.named("preBuild") {
    doFirst {
        val lib = file("src/main/jniLibs/arm64-v8a/libcountersign_ffi.so")
        val generated = file("src/main/generated")
        if (!lib.exists() || !generated.exists()) {
            throw GradleException("native library or generated bindings missing: run `cargo xtask android` from the repository root")
        }
    }
}
