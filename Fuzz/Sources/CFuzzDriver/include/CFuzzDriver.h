#pragma once

/// Runs libFuzzer's driver on the harness's LLVMFuzzerTestOneInput (linked with -sanitize=fuzzer).
int meshgate_fuzz_main(int argc, char **argv);
