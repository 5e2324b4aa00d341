/// What a file says about itself — its embedded metadata — as recorded at ingest: claims, never facts.
///
/// Made by ``ClaimExtractor/extract(head:tail:size:read:)`` from a bounded part of the file; sealed in the
/// item's metadata part as `claims` (Docs/FORMAT.md, "The file's claims"). Every string is sanitized
/// (``ClaimText/sanitize(_:limit:)``); absent claims are `nil` and not encoded.
package struct FileClaims: Codable, Sendable, Equatable {
    /// Format version (1).
    package var version = 1
    /// The container the claims were read from: `jpeg`, `tiff`, `mp4`, `mov`, `heif`, `pdf` or `other`.
    package var format: String
    /// When the file says it was captured (camera time, or for a PDF its creation date): see ``capturedFrom``.
    package var capturedAt: ClaimedTime?
    /// Where `capturedAt` comes from: `exif`, `xmp`, `quicktime` (the `com.apple.quicktime.creationdate` key),
    /// `mvhd` (the movie header) or `pdf` (the Info dictionary's `/CreationDate`).
    package var capturedFrom: String?
    /// Where the file says it was made.
    package var gps: GPSClaim?
    /// Camera maker (EXIF `Make`).
    package var make: String?
    /// Camera model (EXIF `Model`).
    package var model: String?
    /// Software that wrote the file (EXIF `Software`).
    package var software: String?
    /// The EXIF `DateTimeOriginal` with `OffsetTimeOriginal`, as written.
    package var exifOriginal: ClaimedTime?
    /// The MP4/MOV movie header's `creation_time` (UTC by the format's definition).
    package var mp4Created: ClaimedTime?
    /// The MP4/MOV location string as written (ISO 6709, e.g. `+37.7749-122.4194+010.000/`).
    package var iso6709: String?
    /// The PDF Info dictionary's `/CreationDate`.
    package var pdfCreated: ClaimedTime?
    /// The PDF Info dictionary's `/ModDate`.
    package var pdfModified: ClaimedTime?
    /// The PDF Info dictionary's `/Producer`.
    package var producer: String?
    /// The PDF Info dictionary's `/Creator`.
    package var creator: String?
    /// Whether the file carries a C2PA manifest (detected only: never verified, the bytes are kept untouched).
    package var c2pa = false
    /// The original file's modification time from the file system at ingest (RFC 3339 UTC, whole seconds).
    package var fileModifiedAt: String?

    /// Claims of a file of `format` that says nothing yet.
    package init(format: String) {
        self.format = format
    }

    enum CodingKeys: String, CodingKey {
        case version = "v"
        case format
        case capturedAt = "captured_at"
        case capturedFrom = "captured_from"
        case gps, make, model, software
        case exifOriginal = "exif_original"
        case mp4Created = "mp4_created"
        case iso6709
        case pdfCreated = "pdf_created"
        case pdfModified = "pdf_modified"
        case producer, creator, c2pa
        case fileModifiedAt = "file_modified_at"
    }
}

/// A time as a file states it, with the precision it states it at.
package struct ClaimedTime: Codable, Sendable, Equatable, Hashable {
    /// How much of the time the file states.
    package enum Precision: String, Codable, Sendable {
        /// A time in UTC by the format's definition (MP4 `mvhd`).
        case utc
        /// A wall-clock time with its UTC offset.
        case offset
        /// A wall-clock time whose offset the file does not give.
        case local
        /// A calendar day only.
        case day
        /// A month only.
        case month
        /// A year only.
        case year
    }

    /// The time as stated, in RFC 3339 form: `2026-03-02T10:15:00+03:00` (offset), `…Z` (utc),
    /// `2026-03-02T10:15:00` (local), `2026-03-02` (day), `2026-03` (month), `2026` (year).
    package var value: String
    /// How much it states.
    package var precision: Precision
    /// The instant in UTC (`2026-03-02T07:15:00Z`), when the offset is known (`utc` and `offset`).
    package var utc: String?

    /// A key that sorts by time: ``utc`` when known; otherwise the stated wall-clock time read as if it were UTC,
    /// a partial date taken at its start (`2026-03` as `2026-03-01T00:00:00Z`). Used by the index's
    /// `captured_at` column and `ls --captured-after`/`--captured-before` (Docs/FORMAT.md).
    package var sortKey: String {
        if let utc { return utc }
        switch precision {
        case .utc, .offset, .local: return value + "Z"
        case .day: return value + "T00:00:00Z"
        case .month: return value + "-01T00:00:00Z"
        case .year: return value + "-01-01T00:00:00Z"
        }
    }
}

/// A position a file claims.
package struct GPSClaim: Codable, Sendable, Equatable {
    /// Latitude in decimal degrees, north positive, rounded to 7 decimals (about 1 cm).
    package var lat: Double
    /// Longitude in decimal degrees, east positive, rounded to 7 decimals.
    package var lon: Double
    /// Altitude in metres above sea level (negative below), rounded to 2 decimals, when stated.
    package var alt: Double?
    /// Where it comes from: `exif` (the GPS IFD) or `iso6709` (an MP4/MOV location string).
    package var from: String

    /// A position, checked and rounded; `nil` when out of range or not finite.
    init?(lat: Double, lon: Double, alt: Double?, from: String) {
        guard lat.isFinite, lon.isFinite, abs(lat) <= 90, abs(lon) <= 180 else { return nil }
        self.lat = (lat * 1e7).rounded() / 1e7
        self.lon = (lon * 1e7).rounded() / 1e7
        if let alt, alt.isFinite, abs(alt) <= 1e6 {
            self.alt = (alt * 100).rounded() / 100
        }
        self.from = from
    }
}
