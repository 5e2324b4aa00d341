/// Parsing the time forms files use (EXIF, ISO 8601/XMP, PDF dates, MP4 seconds since 1904) into
/// ``ClaimedTime``, with checked ranges: an impossible date (month 13, 31 April, hour 25) gives `nil`.
enum ClaimTime {
    /// Calendar fields; `hour == nil` for a date only.
    struct Fields {
        var year: Int
        var month: Int?
        var day: Int?
        var hour: Int?
        var minute = 0
        var second = 0
        /// Minutes east of UTC, when stated.
        var offset: Int?
    }

    /// Seconds between 1904-01-01 and 1970-01-01 (MP4 times count from 1904).
    static let mp4Epoch: Int64 = 2_082_844_800

    /// A time from its fields, or `nil` when they are out of range.
    static func make(_ f: Fields, utcByDefinition: Bool = false) -> ClaimedTime? {
        guard (1...9999).contains(f.year) else { return nil }
        let y = pad(f.year, 4)
        guard let month = f.month else { return ClaimedTime(value: y, precision: .year) }
        guard (1...12).contains(month) else { return nil }
        guard let day = f.day else { return ClaimedTime(value: "\(y)-\(pad(month, 2))", precision: .month) }
        guard (1...daysIn(month, f.year)).contains(day) else { return nil }
        let date = "\(y)-\(pad(month, 2))-\(pad(day, 2))"
        guard let hour = f.hour else { return ClaimedTime(value: date, precision: .day) }
        // A leap second (:60) is refused with the rest: no claimed time needs one, and every kept time then sorts.
        guard (0...23).contains(hour), (0...59).contains(f.minute), (0...59).contains(f.second) else { return nil }
        let wall = "\(date)T\(pad(hour, 2)):\(pad(f.minute, 2)):\(pad(f.second, 2))"
        let local = daysFromCivil(f.year, month, day) * 86_400 + Int64(hour * 3600 + f.minute * 60 + f.second)
        if utcByDefinition {
            return ClaimedTime(value: wall + "Z", precision: .utc, utc: utcString(local))
        }
        guard let offset = f.offset else { return ClaimedTime(value: wall, precision: .local) }
        guard abs(offset) <= 18 * 60 else { return nil }
        let sign = offset < 0 ? "-" : "+"
        let suffix = "\(sign)\(pad(abs(offset) / 60, 2)):\(pad(abs(offset) % 60, 2))"
        return ClaimedTime(value: wall + suffix, precision: .offset, utc: utcString(local - Int64(offset) * 60))
    }

    /// An instant in Unix seconds as RFC 3339 UTC (`nil` outside years 1–9999).
    static func utcString(_ unix: Int64) -> String? {
        guard unix >= -62_135_596_800, unix <= 253_402_300_799 else { return nil }
        let days = unix >= 0 ? unix / 86_400 : -((-unix + 86_399) / 86_400)
        let rest = Int(unix - days * 86_400)
        let (y, m, d) = civilFromDays(days)
        return
            "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rest / 3600, 2)):\(pad(rest / 60 % 60, 2)):\(pad(rest % 60, 2))Z"
    }

    /// An MP4 time (seconds since 1904-01-01 UTC); `nil` for 0 (unset) or out of range.
    static func mp4(_ seconds: UInt64) -> ClaimedTime? {
        guard seconds > 0, seconds < UInt64(Int64.max / 2) else { return nil }
        guard let utc = utcString(Int64(seconds) - mp4Epoch) else { return nil }
        return ClaimedTime(value: utc, precision: .utc, utc: utc)
    }

    /// EXIF `YYYY:MM:DD HH:MM:SS`, with `OffsetTimeOriginal` (`±HH:MM`) when given. Blank or zero fields
    /// (cameras write `0000:00:00 00:00:00` or spaces when unset) give `nil`.
    static func exif(_ text: String, offset: String?) -> ClaimedTime? {
        let b = Array(text.utf8)
        guard b.count >= 19, b[4] == 0x3A, b[7] == 0x3A, b[10] == 0x20 || b[10] == 0x54, b[13] == 0x3A, b[16] == 0x3A,
            let year = number(b, 0, 4), let month = number(b, 5, 2), let day = number(b, 8, 2),
            let hour = number(b, 11, 2), let minute = number(b, 14, 2), let second = number(b, 17, 2)
        else { return nil }
        var fields = Fields(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        if let offset {
            fields.offset = zoneOffset(Array(offset.utf8)[...])
        }
        return make(fields)
    }

    /// ISO 8601 as XMP and QuickTime write it: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm`,
    /// `…:ss`, optional fraction (dropped), then optional `Z`, `±hh:mm` or `±hhmm`.
    static func iso8601(_ text: String) -> ClaimedTime? {
        let b = Array(text.utf8.prefix(64))
        guard let year = number(b, 0, 4) else { return nil }
        var f = Fields(year: year)
        guard b.count > 4 else { return make(f) }
        guard b[4] == 0x2D, let month = number(b, 5, 2) else { return nil }
        f.month = month
        guard b.count > 7 else { return make(f) }
        guard b[7] == 0x2D, let day = number(b, 8, 2) else { return nil }
        f.day = day
        guard b.count > 10 else { return make(f) }
        guard b[10] == 0x54 || b[10] == 0x20, let hour = number(b, 11, 2), b.count >= 16, b[13] == 0x3A,
            let minute = number(b, 14, 2)
        else { return nil }
        f.hour = hour
        f.minute = minute
        var i = 16
        if i < b.count, b[i] == 0x3A {
            guard let second = number(b, 17, 2) else { return nil }
            f.second = second
            i = 19
            if i < b.count, b[i] == 0x2E || b[i] == 0x2C {
                i += 1
                while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            }
        }
        if i < b.count {
            guard let offset = zoneOffset(b[i...]) else { return nil }
            f.offset = offset
        }
        return make(f)
    }

    /// A PDF date (ISO 32000-1 §7.9.4): `D:YYYYMMDDHHmmSSOHH'mm'`, every field after the year optional,
    /// `O` one of `+`, `-`, `Z`; the apostrophes optional.
    static func pdf(_ text: String) -> ClaimedTime? {
        var b = Array(text.utf8.prefix(64))
        if b.starts(with: [0x44, 0x3A]) { b.removeFirst(2) }
        var digits = 0
        while digits < b.count, digits < 14, (0x30...0x39).contains(b[digits]) { digits += 1 }
        guard digits >= 4, digits % 2 == 0, let year = number(b, 0, 4) else { return nil }
        var f = Fields(year: year)
        if digits >= 6 { f.month = number(b, 4, 2) }
        if digits >= 8 { f.day = number(b, 6, 2) }
        if digits >= 10 { f.hour = number(b, 8, 2) }
        if digits >= 12 { f.minute = number(b, 10, 2) ?? 0 }
        if digits >= 14 { f.second = number(b, 12, 2) ?? 0 }
        if f.hour != nil, digits < b.count {
            var zone = Array(b[digits...].filter { $0 != 0x27 })  // HH'mm' → HHmm
            if zone.count > 1, zone[0] == 0x5A { zone = [0x5A] }  // "Z00'00'" is UTC too
            guard let offset = zoneOffset(zone[...]) else { return nil }
            f.offset = offset
        } else if digits < b.count, f.hour == nil {
            return nil
        }
        return make(f)
    }

    /// `Z`, `±hh`, `±hh:mm` or `±hhmm` as minutes east of UTC; `nil` for anything else.
    static func zoneOffset(_ b: ArraySlice<UInt8>) -> Int? {
        let b = Array(b)
        if b == [0x5A] { return 0 }
        guard let sign = b.first, sign == 0x2B || sign == 0x2D, let hours = number(b, 1, 2) else { return nil }
        var minutes = 0
        switch b.count {
        case 3: break
        case 5:
            guard let m = number(b, 3, 2) else { return nil }
            minutes = m
        case 6:
            guard b[3] == 0x3A, let m = number(b, 4, 2) else { return nil }
            minutes = m
        default: return nil
        }
        guard hours <= 18, minutes <= 59 else { return nil }
        let total = hours * 60 + minutes
        return sign == 0x2D ? -total : total
    }

    /// The decimal number of `count` ASCII digits at `offset`, or `nil`.
    static func number(_ b: [UInt8], _ offset: Int, _ count: Int) -> Int? {
        guard offset >= 0, count > 0, offset + count <= b.count else { return nil }
        var value = 0
        for byte in b[offset..<(offset + count)] {
            guard (0x30...0x39).contains(byte) else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    static func daysIn(_ month: Int, _ year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (the era-based method of counting 400-year cycles).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The inverse of ``daysFromCivil(_:_:_:)``.
    static func civilFromDays(_ days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (Int(y), Int(m), Int(d))
    }
}
