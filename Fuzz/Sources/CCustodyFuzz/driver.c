// Only the declaration in include/CCustodyFuzz.h: libFuzzer itself comes from the toolchain's compiler-rt.
#include "CCustodyFuzz.h"
