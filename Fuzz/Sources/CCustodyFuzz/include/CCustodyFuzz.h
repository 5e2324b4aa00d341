#ifndef CCUSTODYFUZZ_H
#define CCUSTODYFUZZ_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): runs the fuzzing loop on `callback` with the
/// command line's options and corpus folders. custody-fuzz calls it from its own main, because SwiftPM links
/// every executable with its module's main.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
