plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}
// FCM needs your Firebase project's app/google-services.json; without it the app
// still builds and long-polls instead of receiving pushes.
if (file("google-services.json").exists()) {
    apply(plugin = "com.google.gms.google-services")
}

android {
    namespace = "org.countersign.sample.app"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.countersign.sample"
        // Android 12: the vault does ECDH in the Keystore (PURPOSE_AGREE_KEY, API 31), so
        // every private key, the KEM keys included, stays in StrongBox / the TEE. The
        // library itself runs from API 24 with another KeyVault (or the software one).
        minSdk = 31
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    sourceSets {
        getByName("main") {
            // The platform-independent logic, compiled and tested on the JVM by `cargo xtask test`.
            kotlin.srcDirs("src/main/kotlin", "../shared/src/main/kotlin")
        }
    }

    buildFeatures { viewBinding = false }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation(project(":countersign"))
    implementation("androidx.core:core-ktx:1.13.1")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
    implementation("androidx.biometric:biometric:1.1.0")
    implementation("androidx.recyclerview:recyclerview:1.3.2")
    implementation("com.google.firebase:firebase-messaging:24.1.0")
    // QR scanning (camera + ZXing).
    implementation("com.journeyapps:zxing-android-embedded:4.3.0")
}
