import CustodyArchive
import Foundation

// The one path human-readable text takes out of the CLI. Names, purposes, paths, reasons and error details
// may come from outside (an identity file, a bundle, a peer, a file name), so every line is passed through
// `TerminalText.escape` on its way out: control characters (ESC included), line separators and bidirectional
// or other format characters are written as `\u{XXXX}`, so no printed value can recolour the terminal, move
// the cursor, reorder the text after it, or pose as a line of its own.
//
// `print` below shadows the standard library's inside this module, so no call can bypass it. Machine formats
// that must stay byte-exact (JSON, signed notes, cosignature lines, exported identity files) are written with
// `FileHandle` instead: JSON escapes every control character itself, and the signed formats are this archive's
// own or checked by the library before they are printed.

/// Prints one line of human-readable output, escaped: a newline inside an item is shown as `\u{A}`.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    Swift.print(TerminalText.escape(items.map { "\($0)" }.joined(separator: separator)), terminator: terminator)
}

/// Prints a multi-line block whose line breaks are the program's own, escaped except for `"\n"`.
func printBlock(_ text: String, terminator: String = "\n") {
    Swift.print(TerminalText.escape(text, keepingNewlines: true), terminator: terminator)
}

/// Writes one escaped line to standard error (`custody: <what> — <fix>` messages, warnings, notes).
func printError(_ line: String) {
    FileHandle.standardError.write(Data((TerminalText.escape(line) + "\n").utf8))
}
