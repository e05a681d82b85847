// Android library module: uniffi-generated Kotlin + the `suspend` facade + jniLibs.
//
// Layout filled by `cargo xtask android` (both folders are git-ignored):
//   src/main/jniLibs/<abi>/libcountersign_ffi.so   arm64-v8a, armeabi-v7a, x86_64, x86
//   src/main/generated/org/countersign/countersign.kt
// Build: gradle -p bindings/kotlin assembleRelease  ->  build/outputs/aar/countersign-release.aar
// Publish: `cargo xtask android` runs publishReleasePublicationToLocalRepository, which
// writes the AAR and its POM into the Maven repository target/maven/.
plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.0"
    `maven-publish`
}

group = "org.countersign"
// Keep in step with ANDROID_VERSION in xtask/src/mobile.rs.
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
    repositories {
        // The local Maven repository `cargo xtask android` fills (an app adds it with
        // `maven(url = ...)`); -PcountersignMavenRepo overrides the folder.
        maven {
            name = "local"
            url = uri(providers.gradleProperty("countersignMavenRepo").getOrElse("../../target/maven"))
        }
    }
    publications {
        register<MavenPublication>("release") {
            artifactId = "countersign"
            afterEvaluate { from(components["release"]) }
            pom {
                name.set("Countersign")
                description.set("Countersign authenticator core for Android: push approvals, OTP, keys in the Keystore.")
                licenses { license { name.set("Apache-2.0") } }
            }
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
