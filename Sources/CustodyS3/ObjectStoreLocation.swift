import CustodyStorage
import Foundation

/// Where an archive's objects are, as its folder says: the S3 bucket `objects.json` names, else the folder
/// `objects/` (Docs/FORMAT.md section "Object stores").
///
/// The one place that picks a backend: the composition root (the CLI) reads the location, opens the store
/// and hands it to the archive, which only ever sees ``ObjectStore``.
package enum ObjectStoreLocation: Sendable, Equatable {
    /// Files under this `objects/` folder.
    case folder(String)
    /// Objects in an S3 bucket.
    case s3(S3Settings)

    /// The settings file of an archive at `root` whose objects are not in its folder.
    package static func settingsPath(archive root: String) -> String { root + "/objects.json" }

    /// Reads where the objects of the archive at `root` are.
    ///
    /// - Throws: ``StorageError``: damaged when `objects.json` is there but not a valid setting; cannot
    ///   create when it cannot be read.
    package static func of(archive root: String) throws(StorageError) -> ObjectStoreLocation {
        let path = settingsPath(archive: root)
        var st = stat()
        guard stat(path, &st) == 0 else { return .folder(root + "/objects") }
        let bytes = try POSIX.readFile(path, limit: 64 * 1024)
        guard let settings = try? JSONDecoder().decode(S3Settings.self, from: Data(bytes)), settings.backend == "s3"
        else {
            throw StorageError(.damaged, "\(path) is not a valid object store setting", fix: "restore it from a backup")
        }
        return .s3(settings)
    }

    /// Opens the store. Nothing is sent to S3 yet: a command that reads no object needs no credentials.
    ///
    /// - Parameter environment: How to reach and authenticate to S3.
    /// - Returns: The store, for the archive to use.
    /// - Throws: ``StorageError``: the folder cannot be opened or is a link; the S3 endpoint is not a URL.
    package func open(environment: S3Environment = .current()) throws(StorageError) -> any ObjectStore {
        switch self {
        case .folder(let path): try FileObjectStore(root: path)
        case .s3(let settings): S3ObjectStore(client: try S3Client(settings: settings, environment: environment))
        }
    }

    /// Records that the objects of the archive at `root` are in the bucket `settings` names: writes
    /// `objects.json` (0644, no secrets) atomically and durably. Its presence switches the store.
    ///
    /// - Throws: ``StorageError`` (cannot create) when the file cannot be written.
    package static func record(_ settings: S3Settings, archive root: String) throws(StorageError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(settings)) + [0x0A]
        } catch {
            throw StorageError(.cannotCreate, "cannot encode the object store setting", fix: "report this")
        }
        try POSIX.writeFileAtomically(settingsPath(archive: root), bytes, mode: 0o644)
    }

    /// Switches the archive at `root` from its `objects/` folder to the bucket `settings` names, once every
    /// object has been copied there and verified (``S3ObjectStore/copy(_:from:width:progress:)``): records the
    /// bucket (``record(_:archive:)``), then keeps the local folder as `objects-before-s3/` for the operator to
    /// delete once satisfied.
    ///
    /// - Returns: Where the local objects are now: `objects-before-s3/`, or `objects/` when it could not be
    ///   renamed (the archive uses the bucket either way).
    /// - Throws: ``StorageError`` when `objects.json` cannot be written (then nothing was switched).
    package static func switchToS3(_ settings: S3Settings, archive root: String) throws(StorageError) -> String {
        try record(settings, archive: root)
        let kept = root + "/objects-before-s3"
        return rename(root + "/objects", kept) == 0 ? kept : root + "/objects"
    }
}
