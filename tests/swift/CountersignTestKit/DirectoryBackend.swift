// Test support shared by the Swift tests and the second-process harness: storage
// blobs as plain files in a directory that several processes open at once.
import CountersignSampleKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Blobs as files in a directory (`<hex key>.blob`, written to a temporary file
/// and renamed): a backend several processes can share. Plain files: tests only
/// (the app keeps its blobs in the Keychain).
public final class DirectoryBackend: KeyValueBackend {
    /// The directory holding the blobs.
    public let directory: URL

    /// Uses (creating) `directory`.
    public init(_ directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    private func file(_ key: String) -> URL {
        directory.appendingPathComponent(Data(key.utf8).map { String(format: "%02x", $0) }.joined() + ".blob")
    }

    public func read(_ key: String) throws -> Data? {
        let url = file(key)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            return try Data(contentsOf: url)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { return nil }  // deleted meanwhile
            throw BackendError("read: \(error)")
        }
    }

    public func write(_ key: String, _ value: Data) throws {
        let url = file(key)
        let tmp = url.appendingPathExtension("\(getpid()).tmp")
        try value.write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else { throw BackendError("rename: errno \(errno)") }
    }

    public func remove(_ key: String) throws {
        guard unlink(file(key).path) == 0 || errno == ENOENT else { throw BackendError("unlink: errno \(errno)") }
    }

    public func allKeys() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).compactMap { name in
            guard name.hasSuffix(".blob") else { return nil }
            let hex = Array(name.dropLast(5).utf8)
            guard hex.count % 2 == 0 else { return nil }
            var bytes: [UInt8] = []
            for i in stride(from: 0, to: hex.count, by: 2) {
                guard let b = UInt8(String(decoding: hex[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
                bytes.append(b)
            }
            return String(bytes: bytes, encoding: .ascii)
        }
    }
}

/// Storage over the files in `directory`, locked by its `lock` file: what each
/// process sharing the directory opens.
public func directoryStorage(_ directory: URL) throws -> BackendStorage {
    BackendStorage(try DirectoryBackend(directory), lockFile: directory.appendingPathComponent("lock"))
}
