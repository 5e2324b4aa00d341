import CCustodyFuzz
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// custody-fuzz: every libFuzzer target in one binary. `CUSTODY_FUZZ_TARGET` picks the target (Scripts/fuzz.sh
// sets it); `CUSTODY_FUZZ_MAKE_SEEDS=<dir>` writes the seed corpus instead (Fuzz/corpus/). Every other argument
// is libFuzzer's.

let environment = ProcessInfo.processInfo.environment
if let directory = environment["CUSTODY_FUZZ_MAKE_SEEDS"] {
    do {
        try await Seeds.make(in: directory)
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("custody-fuzz: cannot make seeds: \(error)\n".utf8))
        exit(1)
    }
}
guard let name = environment["CUSTODY_FUZZ_TARGET"], let target = FuzzTarget.all[name] else {
    let names = FuzzTarget.all.keys.sorted().joined(separator: ", ")
    FileHandle.standardError.write(Data("custody-fuzz: set CUSTODY_FUZZ_TARGET to one of: \(names)\n".utf8))
    exit(64)
}
do {
    try await FuzzTarget.prepare(name)
} catch {
    FileHandle.standardError.write(Data("custody-fuzz: cannot prepare \(name): \(error)\n".utf8))
    exit(1)
}
FuzzTarget.chosen = target

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(
    LLVMFuzzerRunDriver(&argc, &argv) { data, size in testOneInput(data, size) }
)

/// libFuzzer's own `main` (linked from compiler-rt, never called: SwiftPM points `main` at this file's code)
/// refers to this entry point; it runs the chosen target like the driver's callback above.
@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.chosen?.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
