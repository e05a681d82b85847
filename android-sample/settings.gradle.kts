// Countersign sample app. Build the native library first from the repository root:
//   cargo xtask android
// then: gradle -p android-sample :app:assembleDebug   (AGP 8.7, JDK 17, Android SDK 35)
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "countersign-sample"
include(":app")
// The library module (generated bindings + facade + jniLibs).
include(":countersign")
project(":countersign").projectDir = file("../bindings/kotlin")
