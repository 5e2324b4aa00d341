import CustodyStorage
import Foundation

/// Where an archive's objects live on S3 and how to reach the store: `objects.json` in the archive folder
/// (Docs/FORMAT.md section "Object stores"). Holds no credentials.
package struct S3Settings: Codable, Sendable, Equatable {
    /// Always `s3`.
    package var backend = "s3"
    /// The bucket.
    package var bucket: String
    /// The key prefix (no leading or trailing `/`; may be empty).
    package var prefix: String
    /// The endpoint URL (`https://host[:port]`); `nil`: from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else
    /// AWS (`https://s3.amazonaws.com`). `init` stores what it used.
    package var endpoint: String?
    /// The region; `nil`: from `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`. `init` stores what it used.
    package var region: String?
    /// Objects larger than this are uploaded in parts.
    package var multipartThreshold: Int64 = 64 << 20
    /// The size of each part (at least 5 MiB, as S3 requires of every part but the last).
    package var partSize: Int64 = 16 << 20

    enum CodingKeys: String, CodingKey {
        case backend, bucket, prefix, endpoint, region
        case multipartThreshold = "multipart_threshold"
        case partSize = "part_size"
    }

    package init(bucket: String, prefix: String, endpoint: String? = nil, region: String? = nil) {
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.region = region
    }

    /// Parses `s3://bucket[/prefix]`.
    ///
    /// - Throws: ``StorageError`` (usage) for anything else, or a bucket name S3 does not allow.
    package static func parse(_ url: String) throws -> S3Settings {
        guard url.hasPrefix("s3://") else {
            throw StorageError(.usage, "\(url) is not an s3:// URL", fix: "give s3://BUCKET or s3://BUCKET/PREFIX")
        }
        let rest = url.dropFirst(5)
        let bucket = String(rest.prefix { $0 != "/" })
        var prefix = String(rest.dropFirst(bucket.count))
        while prefix.hasPrefix("/") { prefix.removeFirst() }
        while prefix.hasSuffix("/") { prefix.removeLast() }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-")
        guard (3...63).contains(bucket.count), bucket.allSatisfy(allowed.contains),
            bucket.first?.isLetter == true || bucket.first?.isNumber == true
        else {
            throw StorageError(
                .usage,
                "\"\(bucket)\" is not a valid bucket name (3–63 lowercase letters, digits, dots and hyphens)",
                fix: "give s3://BUCKET/PREFIX with the bucket's exact name"
            )
        }
        let prefixAllowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/")
        guard prefix.count <= 512, prefix.allSatisfy(prefixAllowed.contains),
            !prefix.split(separator: "/", omittingEmptySubsequences: false).contains(where: {
                $0.isEmpty || $0 == "." || $0 == ".."
            }) || prefix.isEmpty
        else {
            throw StorageError(
                .usage,
                "the prefix \"\(prefix)\" is not allowed (letters, digits, . - _ and single slashes between parts)",
                fix: "choose a simpler prefix"
            )
        }
        return S3Settings(bucket: bucket, prefix: prefix)
    }

    /// `s3://bucket/prefix`.
    package var url: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/" + prefix) }
}

/// What the environment says about reaching S3 (the standard AWS variables).
package struct S3Environment: Sendable {
    /// The endpoint URL, when not AWS.
    package var endpoint: String?
    /// The region.
    package var region: String?
    /// The access key id.
    package var accessKey: String?
    /// The secret access key (held only until the first request turns it into guarded credentials).
    package var secretKey: String?
    /// The session token of temporary credentials.
    package var sessionToken: String?

    /// An environment with what is given (nothing: AWS's defaults, no credentials).
    package init(
        endpoint: String? = nil,
        region: String? = nil,
        accessKey: String? = nil,
        secretKey: String? = nil,
        sessionToken: String? = nil
    ) {
        self.endpoint = endpoint
        self.region = region
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.sessionToken = sessionToken
    }

    /// From `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`), `AWS_REGION` (else `AWS_DEFAULT_REGION`),
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    package static func current(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    )
        -> S3Environment
    {
        func value(_ names: String...) -> String? {
            names.lazy.compactMap { environment[$0] }.first { !$0.isEmpty }
        }
        return S3Environment(
            endpoint: value("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            region: value("AWS_REGION", "AWS_DEFAULT_REGION"),
            accessKey: value("AWS_ACCESS_KEY_ID"),
            secretKey: value("AWS_SECRET_ACCESS_KEY"),
            sessionToken: value("AWS_SESSION_TOKEN")
        )
    }
}
